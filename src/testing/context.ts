import type { Kv, OpenKvOptions } from "../index.js";

/** A part of the driver contract the suite checks on its own (see `contract/index.ts`). */
export type KvCapability = "storage" | "changes" | "queues";

/** How a conformance suite reaches one implementation of the Kv contract. */
export interface KvTarget {
  readonly name: string;
  /** Capabilities the implementation does not have: their suites are skipped. */
  readonly skip?: readonly KvCapability[];
  /** Opens a fresh, empty database. */
  open(options?: OpenKvOptions): Promise<Kv>;
  /** Opens the same database again after `close()`, when the implementation persists. */
  reopen?: (options?: OpenKvOptions) => Promise<Kv>;
}

/** A clock tests move by hand. */
export function manualClock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
