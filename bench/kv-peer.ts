/**
 * A Deno KV store in a process of its own, driven by JSON lines on stdin and answering on stdout:
 * run by the Deno binary (`deno run -A --unstable-kv --sloppy-imports`, `Deno.openKv`) or by
 * Node (`@deno/kv`). Each request runs a step of the workloads Cellar runs in the parent
 * (bench/workload.ts), so both visit the same keys in the same order with the same values.
 * Written against Node's modules, which Deno provides too.
 */
import process from "node:process";
import { createInterface } from "node:readline";
import {
  awaited,
  bulkLoad,
  bursts,
  KEYS,
  type Key,
  LIST_LIMIT,
  PREFIX,
  populate,
  singleLoad,
  type User,
  writer,
} from "./workload.js";

/** What the parent asks; every request is answered with one {@link PeerReply}, in order. */
export type PeerRequest =
  | { readonly op: "open"; readonly path: string }
  | { readonly op: "get" | "burst" | "list"; readonly n: number }
  | { readonly op: "bulk"; readonly path: string; readonly keys: number; readonly batch: number }
  | { readonly op: "singles"; readonly path: string; readonly keys: number };

/** A request done; `ms`: a load's time from opening its file to closing it. */
export interface PeerDone {
  readonly ok: true;
  readonly ms?: number;
}
export type PeerReply = PeerDone | { readonly error: string };

/** The part of Deno KV's API the workloads use, alike in `Deno.Kv` and @deno/kv's `Kv`. */
interface PeerKv {
  get(key: Key): Promise<unknown>;
  set(key: Key, value: User): Promise<unknown>;
  list(
    selector: { prefix: readonly unknown[] },
    options: { limit: number },
  ): AsyncIterable<unknown>;
  atomic(): PeerAtomic;
  close(): void;
}
interface PeerAtomic {
  set(key: Key, value: User): PeerAtomic;
  commit(): Promise<{ ok: boolean }>;
}

type OpenKv = (path: string) => Promise<PeerKv>;

async function opener(): Promise<OpenKv> {
  const deno = (globalThis as { Deno?: { openKv: OpenKv } }).Deno;
  if (deno) return (path) => deno.openKv(path);
  const { openKv } = await import("@deno/kv");
  return (path) => openKv(path) as Promise<PeerKv>;
}

/** The workloads on one populated store, as batches of `n` operations. */
function workloads(kv: PeerKv) {
  const set = writer((key, value) => kv.set(key, value));
  return {
    get: awaited((i) => kv.get(KEYS[i]!)),
    burst: bursts(set),
    list: awaited(async () => {
      let n = 0;
      for await (const _ of kv.list({ prefix: PREFIX }, { limit: LIST_LIMIT })) n++;
      if (n !== LIST_LIMIT) throw new Error(`a list read ${n} entries, expected ${LIST_LIMIT}`);
    }),
  };
}

async function commitAll(kv: PeerKv, entries: readonly (readonly [Key, User])[]): Promise<void> {
  let atomic = kv.atomic();
  for (const [key, value] of entries) atomic = atomic.set(key, value);
  if (!(await atomic.commit()).ok) throw new Error("an atomic commit of sets failed");
}

async function main(): Promise<void> {
  const openKv = await opener();
  let store: { kv: PeerKv; run: ReturnType<typeof workloads> } | undefined;
  const timedLoad = async (path: string, load: (kv: PeerKv) => Promise<void>) => {
    const start = performance.now();
    const kv = await openKv(path);
    await load(kv);
    kv.close();
    return performance.now() - start;
  };
  const handle = async (request: PeerRequest): Promise<PeerReply> => {
    switch (request.op) {
      case "open": {
        const kv = await openKv(request.path);
        await populate((key, value) => kv.set(key, value));
        store = { kv, run: workloads(kv) };
        return { ok: true };
      }
      case "get":
      case "burst":
      case "list":
        if (!store) throw new Error("no store open");
        await store.run[request.op](request.n);
        return { ok: true };
      case "bulk": {
        const { keys, batch } = request;
        const load = (kv: PeerKv) => bulkLoad((entries) => commitAll(kv, entries), keys, batch);
        return { ok: true, ms: await timedLoad(request.path, load) };
      }
      case "singles": {
        const load = (kv: PeerKv) => singleLoad((key, value) => kv.set(key, value), request.keys);
        return { ok: true, ms: await timedLoad(request.path, load) };
      }
    }
  };
  // Requests arrive one at a time: the parent waits for each answer before the next.
  for await (const line of createInterface({ input: process.stdin })) {
    let reply: PeerReply;
    try {
      reply = await handle(JSON.parse(line) as PeerRequest);
    } catch (error) {
      reply = { error: String(error) };
    }
    process.stdout.write(`${JSON.stringify(reply)}\n`);
  }
  store?.kv.close();
}

await main();
