import { type Kv, KvError, type OpenKvOptions } from "../index.js";

/** A part of the driver contract the suite checks on its own (see `contract/index.ts`). */
export type KvCapability = "storage" | "changes" | "queues" | "indexes" | "search";

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

/** The next item of `reader`; fails after `ms` without one, or if the stream ends. */
export async function nextWithin<T>(
  reader: ReadableStreamDefaultReader<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what}`)), ms);
  });
  try {
    const result = await Promise.race([reader.read(), timeout]);
    if (result.done) throw new Error(`${what} stream ended`);
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** The `KvError` code `promise` rejects with, or `"none"` when it resolves; other errors propagate. */
export async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "none";
  } catch (error) {
    if (error instanceof KvError) return error.code;
    throw error;
  }
}
