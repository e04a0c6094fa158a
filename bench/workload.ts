import type { Batch } from "./harness.js";

/** The data every contender is measured on: `["users", i]` → a ~100-byte JSON object. */
export const ENTRIES = 10_000;
export const BURST = 1000;
export const LIST_LIMIT = 100;
export const PREFIX: ["users"] = ["users"];

export type Key = ["users", number];
export interface User {
  id: number;
  name: string;
  email: string;
  role: string;
  active: boolean;
  score: number;
}

export const KEYS: readonly Key[] = Array.from({ length: ENTRIES }, (_, i): Key => ["users", i]);
/** The value of `["users", i]` at `version` (0: as loaded, 1: as first rewritten). */
export const user = (i: number, version: number): User => {
  const name = `user-${String(i).padStart(6, "0")}`;
  return {
    id: i,
    name,
    email: `${name}@example.com`,
    role: "member",
    active: (i + version) % 2 === 0,
    score: (i + version) % 997,
  };
};

/** The values every store is loaded with. */
export const VALUES: readonly User[] = Array.from({ length: ENTRIES }, (_, i) => user(i, 0));
const UPDATES: readonly User[] = Array.from({ length: ENTRIES }, (_, i) => user(i, 1));

/**
 * `set` bound to one store, as an operation on `KEYS[i]`. Each write stores the value the key
 * does not hold, because SQLite skips rewriting a row whose bytes are unchanged.
 */
export function writer<R>(set: (key: Key, value: User) => R): (i: number) => R {
  const updated = new Uint8Array(ENTRIES);
  return (i) => {
    const next = updated[i] ? VALUES : UPDATES;
    updated[i] = next === UPDATES ? 1 : 0;
    return set(KEYS[i]!, next[i]!);
  };
}

// A fixed stride through the keys: every contender visits the same keys in the same order,
// and none of them gets a purely sequential walk. 7919 is coprime with ENTRIES, so a pass
// visits every key.
const scattered = (j: number) => (j * 7919) % ENTRIES;

/** `n` operations on `KEYS[i]` one after another, each awaited before the next starts. */
export function awaited(op: (i: number) => Promise<unknown>): Batch {
  let j = 0;
  return async (n) => {
    for (const end = j + n; j < end; j++) await op(scattered(j));
  };
}

/** `n` operations on `KEYS[i]` in a plain synchronous loop. */
export function synchronous(op: (i: number) => unknown): Batch {
  let j = 0;
  return (n) => {
    for (const end = j + n; j < end; j++) op(scattered(j));
  };
}

/** `n` rounds of {@link BURST} writes started together and awaited with `Promise.all`. */
export function bursts(op: (i: number) => Promise<unknown>): Batch {
  let j = 0;
  return async (n) => {
    for (let round = 0; round < n; round++) {
      const writes: Promise<unknown>[] = [];
      for (const end = j + BURST; j < end; j++) writes.push(op(scattered(j)));
      await Promise.all(writes);
    }
  };
}

/** `n` rounds of {@link BURST} writes handed together to a synchronous function. */
export function syncBursts(op: (indices: readonly number[]) => unknown): Batch {
  let j = 0;
  return (n) => {
    for (let round = 0; round < n; round++) {
      const indices: number[] = [];
      for (const end = j + BURST; j < end; j++) indices.push(scattered(j));
      op(indices);
    }
  };
}

/** Loads every entry, {@link BURST} concurrent writes at a time. */
export async function populate(set: (key: Key, value: User) => Promise<unknown>): Promise<void> {
  for (let start = 0; start < ENTRIES; start += BURST) {
    const writes: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(start + BURST, ENTRIES); i++)
      writes.push(set(KEYS[i]!, VALUES[i]!));
    await Promise.all(writes);
  }
}

/** One atomic commit of sets, as a store's `atomic()` makes it. */
export type CommitSets = (entries: readonly (readonly [Key, User])[]) => Promise<unknown>;

/**
 * The bulk load: `keys` keys written twice (values of version 0, then of version 1), in atomic
 * commits of `batch` sets each, one commit at a time.
 */
export async function bulkLoad(commit: CommitSets, keys: number, batch: number): Promise<void> {
  for (const version of [0, 1]) {
    for (let start = 0; start < keys; start += batch) {
      const entries: [Key, User][] = [];
      for (let i = start; i < Math.min(start + batch, keys); i++)
        entries.push([["users", i], user(i, version)]);
      await commit(entries);
    }
  }
}

/**
 * The same keys and values as {@link bulkLoad}, each set its own commit: rounds of
 * {@link BURST} sets started together and awaited with `Promise.all`.
 */
export async function singleLoad(
  set: (key: Key, value: User) => Promise<unknown>,
  keys: number,
): Promise<void> {
  for (const version of [0, 1]) {
    for (let start = 0; start < keys; start += BURST) {
      const writes: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(start + BURST, keys); i++)
        writes.push(set(["users", i], user(i, version)));
      await Promise.all(writes);
    }
  }
}
