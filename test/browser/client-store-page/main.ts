/**
 * The page test/browser/client-store.test.ts builds with Vite: a client store kept in IndexedDB,
 * shown by a component using `useValue` and `useSyncStatus`, which records every render in
 * `window.harness.records`.
 */
import { createElement, StrictMode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { type ClientKv, createClientKv, type KvKey } from "../../../src/client.js";
import { KvProvider, useSyncStatus, useValue } from "../../../src/react.js";

interface Shown {
  readonly value: unknown;
  readonly versionstamp: string | null;
  readonly pending: boolean;
  readonly state: string;
  readonly pendingWrites: number;
}

const records: Shown[] = [];
let kv: ClientKv | null = null;
let root: Root | null = null;

function Doc({ k }: { readonly k: KvKey }) {
  const { value, versionstamp, pending } = useValue(k);
  const status = useSyncStatus();
  records.push({
    value,
    versionstamp,
    pending,
    state: status?.state ?? "none",
    pendingWrites: status?.pending ?? 0,
  });
  return createElement(
    "p",
    { id: "doc" },
    `${String(value)} (${status?.state}, ${status?.pending} pending)`,
  );
}

const outcomes: Record<number, unknown> = {};

const harness = {
  records,
  async open(url: string, token: string) {
    kv = await createClientKv({
      url,
      token,
      namespace: "app",
      storage: "cellar-client-store",
      reconnectDelay: 50,
      maxReconnectDelay: 500,
    });
    const rootElement = document.getElementById("root")!;
    root = createRoot(rootElement);
    root.render(
      createElement(
        StrictMode,
        null,
        createElement(KvProvider, { kv }, createElement(Doc, { k: ["doc"] })),
      ),
    );
  },
  async set(key: KvKey, value: unknown) {
    const write = await kv!.set(key, value);
    void write.confirmed.then((outcome) => {
      outcomes[write.id] = outcome;
    });
    return write.id;
  },
  outcome: (id: number) => outcomes[id] ?? null,
  peek: (key: KvKey) => {
    const entry = kv!.peek(key);
    return {
      value: entry.value,
      exists: entry.exists,
      pending: entry.pending,
      versionstamp: entry.versionstamp,
    };
  },
  status: () => {
    const { state, pending, failed, lastSynced, conflicts } = kv!.status;
    return {
      state,
      pending,
      failed,
      lastSynced,
      conflicts: conflicts.map((c) => ({ key: c.key, attempted: c.attempted, server: c.server })),
    };
  },
  outbox: () =>
    kv!.outbox().map((w) => ({ id: w.id, state: w.state, keys: w.mutations.map((m) => m.key) })),
  synced: () => kv!.whenSynced().then(() => true),
};

(window as unknown as { harness: typeof harness }).harness = harness;
