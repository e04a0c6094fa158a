/**
 * The backup scenario every backend runs: a writer loop commits atomic pairs while the backup
 * is taken; each commit's writes are recorded, so the state as of any versionstamp can be
 * rebuilt and compared with a restored copy, entry by entry, versionstamps included.
 */
import { expect } from "vitest";
import type { Kv, KvKey } from "../../src/index.js";

/** One commit's writes: a key and its new value, or null for a delete. */
type Write = readonly [KvKey, unknown];

/** The commits made through {@link Recorder}, in order, with their versionstamps. */
export class Recorder {
  readonly commits: { versionstamp: string; writes: Write[] }[] = [];

  constructor(readonly kv: Kv) {}

  async commit(writes: Write[]): Promise<string> {
    const op = this.kv.atomic();
    for (const [key, value] of writes) {
      if (value === null) op.delete(key);
      else op.set(key, value);
    }
    const result = await op.commit();
    if (!result.ok) throw new Error("a commit of the scenario failed");
    this.commits.push({ versionstamp: result.versionstamp, writes });
    return result.versionstamp;
  }

  /** Every live entry as of `versionstamp`: JSON of the key → [value, versionstamp]. */
  stateAt(versionstamp: string): Map<string, [unknown, string]> {
    const state = new Map<string, [unknown, string]>();
    for (const { versionstamp: vs, writes } of this.commits) {
      if (vs > versionstamp) break;
      for (const [key, value] of writes) {
        if (value === null) state.delete(JSON.stringify(key));
        else state.set(JSON.stringify(key), [value, vs]);
      }
    }
    return state;
  }
}

/** Seeds `entries` entries of `size` bytes each under ["seed"], in commits of 50. */
export async function seed(recorder: Recorder, entries: number, size: number): Promise<void> {
  const filler = "x".repeat(size);
  for (let i = 0; i < entries; i += 50) {
    const writes: Write[] = [];
    for (let j = i; j < Math.min(entries, i + 50); j++) writes.push([["seed", j], { j, filler }]);
    await recorder.commit(writes);
  }
}

/**
 * Runs `during` while a writer commits, in a loop, an atomic pair (["pair", n, "a"] and
 * ["pair", n, "b"], same value) with a counter, and every fifth commit deletes a pair instead.
 * `during` starts once the writer made `warmup` commits. Returns what `during` returned and how
 * many commits landed while it ran.
 */
export async function underWrites<T>(
  recorder: Recorder,
  during: () => Promise<T>,
  warmup = 5,
): Promise<{ result: T; concurrent: number }> {
  let stop = false;
  let n = recorder.commits.length;
  const writer = (async () => {
    while (!stop) {
      n++;
      const pair = n % 40;
      const writes: Write[] =
        n % 5 === 0
          ? [
              [["pair", pair, "a"], null],
              [["pair", pair, "b"], null],
            ]
          : [
              [["pair", pair, "a"], { n }],
              [["pair", pair, "b"], { n }],
              [["counter"], n],
            ];
      await recorder.commit(writes);
    }
  })();
  // Let the writer get going first, so the backup starts among writes.
  const start = recorder.commits.length;
  while (recorder.commits.length < start + warmup) await new Promise((r) => setTimeout(r, 1));
  const before = recorder.commits.length;
  try {
    const result = await during();
    return { result, concurrent: recorder.commits.length - before };
  } finally {
    stop = true;
    await writer;
  }
}

/** Every live entry of `kv`, as {@link Recorder.stateAt} gives them. */
export async function stateOf(kv: Kv): Promise<Map<string, [unknown, string]>> {
  const state = new Map<string, [unknown, string]>();
  for await (const entry of kv.list({ prefix: [] })) {
    state.set(JSON.stringify(entry.key), [entry.value, entry.versionstamp]);
  }
  return state;
}

/** `kv` holds exactly the recorded state as of `versionstamp`, and every pair is whole. */
export async function expectStateAt(kv: Kv, recorder: Recorder, versionstamp: string) {
  const actual = await stateOf(kv);
  const expected = recorder.stateAt(versionstamp);
  expect(actual.size).toBe(expected.size);
  expect(actual).toEqual(expected);
  for (const [key, [value]] of actual) {
    const parsed = JSON.parse(key) as KvKey;
    if (parsed[0] !== "pair" || parsed[2] !== "a") continue;
    const b = actual.get(JSON.stringify(["pair", parsed[1], "b"]));
    expect(b?.[0]).toEqual(value);
  }
}
