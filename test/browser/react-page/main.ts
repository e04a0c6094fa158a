/**
 * The page test/browser/react.test.ts builds with Vite: components that use the hooks, each
 * recording what it rendered in `window.harness.records`, over what the test opens in the page:
 * a Cellar server (the remote client), a database in the page's memory, or a client store.
 */
import { createElement, type ReactNode, StrictMode, Suspense } from "react";
import { createRoot, type Root } from "react-dom/client";
import { type ClientKv, createClientKv, type Kv, type KvKey, openKv } from "../../../src/client.js";
import { KvProvider, useList, useMutation, useSyncStatus, useValue } from "../../../src/react.js";

const records: Record<string, unknown[]> = {};
const mutations: Record<string, (value: unknown) => Promise<unknown>> = {};
const record = (name: string, item: unknown) => {
  records[name] ??= [];
  records[name].push(item);
};

interface Props {
  readonly name: string;
  readonly k: KvKey;
  readonly limit?: number;
}

function Value({ name, k }: Props) {
  const { value, versionstamp, pending, loading } = useValue(k);
  record(name, { value, versionstamp, pending, loading });
  return createElement("p", null, `${name}: ${String(value)}`);
}

function List({ name, k, limit }: Props) {
  const { entries, loading } = useList({ prefix: k }, limit === undefined ? {} : { limit });
  record(name, { loading, values: entries.map((entry) => entry.value) });
  return createElement(
    "ul",
    null,
    entries.map((entry) =>
      createElement("li", { key: String(entry.key.at(-1)) }, String(entry.value)),
    ),
  );
}

function Optimistic({ name, k }: Props) {
  const { value, versionstamp, pending, loading } = useValue(k);
  const write = useMutation((kv: Kv, next: unknown) => kv.set(k, next), {
    optimistic: (next) => [{ key: k, value: next }],
  });
  mutations[name] = write.mutateAsync;
  record(name, { value, versionstamp, pending, loading });
  return createElement("p", null, `${name}: ${String(value)}${pending ? " (saving)" : ""}`);
}

function Suspended({ name, k }: Props) {
  const { value, versionstamp } = useValue(k, { suspense: true });
  record(name, { value, versionstamp });
  return createElement("p", null, `${name}: ${String(value)}`);
}

function Status({ name }: Props) {
  const status = useSyncStatus();
  record(name, status && { state: status.state, pending: status.pending });
  return createElement("p", null, `${name}: ${status?.state}`);
}

function Fallback({ name }: { name: string }) {
  record(name, "fallback");
  return createElement("p", null, "loading…");
}

const components = { Value, List, Optimistic, Suspended, Status } as const;
type Mounted = { readonly component: keyof typeof components; readonly props: Props };

let kv: Kv | ClientKv | null = null;
let root: Root | null = null;
let mounted: Mounted[] = [];

function element({ component, props }: Mounted): ReactNode {
  const node = createElement(components[component], { ...props, key: props.name });
  if (component !== "Suspended") return node;
  return createElement(
    Suspense,
    { key: props.name, fallback: createElement(Fallback, { name: props.name }) },
    node,
  );
}

function renderAll(): void {
  root!.render(
    createElement(StrictMode, null, createElement(KvProvider, { kv: kv! }, mounted.map(element))),
  );
}

const harness = {
  records,
  /** Reads (`get`) the page's `Kv` has finished. */
  reads: 0,
  async open(url?: string, token?: string): Promise<void> {
    const opened = url ? await openKv(url, { token }) : await openKv();
    opened.observe(({ op }) => (op === "get" ? () => void harness.reads++ : undefined));
    kv = opened;
    harness.start();
  },
  /** A client store of the server at `url`, synced before it is shown. */
  async openClient(url: string, token: string): Promise<void> {
    const store = await createClientKv({ url, token, reconnectDelay: 50 });
    await store.whenSynced();
    kv = store;
    harness.start();
  },
  start(): void {
    const container = document.createElement("div");
    document.body.append(container);
    root = createRoot(container);
    mounted = [];
  },
  mount(component: keyof typeof components, props: Props): void {
    mounted = [...mounted, { component, props }];
    renderAll();
  },
  unmount(name: string): void {
    mounted = mounted.filter((m) => m.props.name !== name);
    renderAll();
  },
  write: (key: KvKey, value: unknown) => kv!.set(key, value),
  remove: (key: KvKey) => kv!.delete(key),
  mutate: (name: string, value: unknown) => mutations[name]!(value),
  async close(): Promise<void> {
    root?.unmount();
    root = null;
    await kv?.close();
    kv = null;
    for (const name of Object.keys(records)) delete records[name];
  },
};

(window as unknown as { harness: typeof harness }).harness = harness;
