/**
 * Version-aware reconciliation without React: random histories of one key, and of a range,
 * delivered as events and reads in random orders. What is shown never goes back to an older
 * version, and ends on the newest state.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeKey, type KvKey, keyId } from "../codec/key.js";
import { formatVersionstamp } from "../codec/versionstamp.js";
import type { KvEntryMaybe } from "../core/types.js";
import { ListState, patternOf, rangeOf } from "./list-state.js";
import { KeyState } from "./reconcile.js";

const vs = (n: number) => formatVersionstamp(n);
const KEY = ["k"];

/** A key's history: its entry after each commit `1..n` (other keys' commits leave it as it was). */
const historyArb = fc.array(fc.constantFrom("set", "delete", "other"), {
  minLength: 1,
  maxLength: 25,
});

function statesOf(ops: readonly string[]): {
  states: KvEntryMaybe<number>[];
  events: { at: number; entry: KvEntryMaybe<number> | null }[];
} {
  const states: KvEntryMaybe<number>[] = [{ key: KEY, value: null, versionstamp: null }];
  const events: { at: number; entry: KvEntryMaybe<number> | null }[] = [];
  ops.forEach((op, i) => {
    const at = i + 1;
    const before = states[i]!;
    if (op === "set") {
      const entry = { key: KEY, value: at, versionstamp: vs(at) };
      states.push(entry);
      events.push({ at, entry });
    } else if (op === "delete" && before.versionstamp !== null) {
      states.push({ key: KEY, value: null, versionstamp: null });
      events.push({ at, entry: null });
    } else {
      states.push(before);
    }
  });
  return { states, events };
}

describe("one key", () => {
  it("never shows an older version, and ends on the newest, whatever the order", () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (ops, reads, order) => {
          const n = ops.length;
          const { states, events } = statesOf(ops);
          type Delivery = () => boolean;
          const deliveries: Delivery[] = [
            ...events.map(
              ({ at, entry }) =>
                () =>
                  state.event(vs(at), entry),
            ),
            ...reads.map(([s, h]) => {
              const snapshot = s % (n + 1);
              const head = h % (snapshot + 1);
              return () => state.read(vs(head), states[snapshot]!);
            }),
          ];
          // Any order: sort by random ranks.
          const ranked = deliveries.map((deliver, i) => ({ deliver, rank: order[i] ?? i }));
          ranked.sort((a, b) => a.rank - b.rank);
          const state = new KeyState<number>(KEY);
          // At each change shown: how far the state is known (strictly later than before), and
          // the versionstamps of the entries shown (never older than one shown before).
          const known: string[] = [];
          const shown: string[] = [];
          let asOf = state.asOf;
          for (const { deliver } of ranked) {
            if (deliver()) {
              known.push(state.asOf);
              if (state.entry?.versionstamp) shown.push(state.entry.versionstamp);
            }
            expect(state.asOf >= asOf).toBe(true);
            asOf = state.asOf;
          }
          for (let i = 1; i < known.length; i++) expect(known[i]! > known[i - 1]!).toBe(true);
          for (let i = 1; i < shown.length; i++) expect(shown[i]! >= shown[i - 1]!).toBe(true);
          const newest = states[n]!;
          if (events.length > 0) {
            expect(state.entry?.value ?? null).toBe(newest.value);
            expect(state.entry?.versionstamp ?? null).toBe(newest.versionstamp);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("ignores a first read that resolves after a newer event", () => {
    const state = new KeyState<string>(["a"]);
    expect(state.event(vs(5), { key: ["a"], value: "new", versionstamp: vs(5) })).toBe(true);
    expect(state.read(vs(3), { key: ["a"], value: "old", versionstamp: vs(2) })).toBe(false);
    expect(state.entry?.value).toBe("new");
  });

  it("keeps a delete's versionstamp: an older entry read after it is not shown", () => {
    const state = new KeyState<string>(["a"]);
    state.event(vs(4), { key: ["a"], value: "x", versionstamp: vs(4) });
    expect(state.event(vs(6), null)).toBe(true);
    expect(state.entry).toMatchObject({ exists: false, value: null, versionstamp: null });
    expect(state.read(vs(5), { key: ["a"], value: "x", versionstamp: vs(4) })).toBe(false);
    expect(state.entry?.exists).toBe(false);
  });
});

describe("a range", () => {
  const keys: KvKey[] = [
    ["r", "a"],
    ["r", "b"],
    ["r", "c"],
    ["r", "d"],
    ["r", "e"],
  ];
  const id = (key: KvKey) => keyId(encodeKey(key));

  /** Commits to random keys of the range; each event delivered in order, reads at random points. */
  const commitsArb = fc.array(fc.record({ key: fc.nat(keys.length - 1), remove: fc.boolean() }), {
    minLength: 1,
    maxLength: 30,
  });

  it("ends on the range's newest entries, with or without a limit", () => {
    fc.assert(
      fc.property(
        commitsArb,
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 5 }),
        fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
        fc.boolean(),
        (commits, reads, limit, reverse) => {
          // The state after each commit: key id -> entry.
          const states: Map<string, KvEntryMaybe<number>>[] = [new Map()];
          commits.forEach(({ key, remove }, i) => {
            const next = new Map(states[i]!);
            if (remove) next.delete(id(keys[key]!));
            else
              next.set(id(keys[key]!), { key: keys[key]!, value: i + 1, versionstamp: vs(i + 1) });
            states.push(next);
          });
          const listing = (at: number) => {
            const ids = [...states[at]!.keys()].sort();
            if (reverse) ids.reverse();
            const all = ids.map((k) => states[at]!.get(k)!);
            return limit === undefined ? all : all.slice(0, limit);
          };
          const state = new ListState<number>(rangeOf({ prefix: ["r"] }), { limit, reverse });
          // Each read: started after `start` events were delivered, at a head no older than them,
          // answered from a later snapshot, delivered once `end` events were.
          const planned = reads
            .map(([a, b, c]) => {
              const start = a % (commits.length + 1);
              const head = start + (b % (commits.length - start + 1));
              const snapshot = head + (c % (commits.length - head + 1));
              return { start, head, snapshot, end: Math.max(start, snapshot) };
            })
            .sort((x, y) => x.end - y.end);
          let delivered = 0;
          const deliverUpTo = (n: number) => {
            for (; delivered < n; delivered++) {
              const at = delivered + 1;
              const { key } = commits[delivered]!;
              state.event(id(keys[key]!), vs(at), states[at]!.get(id(keys[key]!)) ?? null);
            }
          };
          const readAt = (head: number, snapshot: number) => {
            const entries = listing(snapshot);
            state.read(vs(head), entries, limit === undefined || entries.length < limit);
          };
          for (const read of planned) {
            deliverUpTo(read.end);
            readAt(read.head, read.snapshot);
          }
          deliverUpTo(commits.length);
          // A final read, as a list cell makes while its window is short.
          if (!state.loaded || state.short()) readAt(commits.length, commits.length);
          expect(state.view().map((entry) => [entry.key, entry.value])).toEqual(
            listing(commits.length).map((entry) => [entry.key, entry.value]),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it("covers a selector's range with the narrowest pattern", () => {
    expect(patternOf({ prefix: ["users"] }).length).toBe(3);
    expect(patternOf({ start: ["a", 1], end: ["a", 9] })).toEqual([
      "a",
      Symbol.for("cellar.pattern.rest"),
    ]);
    const range = rangeOf({ prefix: ["users"] });
    expect(id(["users", "ada"]) > range.start && id(["users", "ada"]) < range.end).toBe(true);
    expect(id(["users"]) >= range.start).toBe(false);
    expect(id(["usersX"]) < range.end && id(["usersX"]) >= range.start).toBe(false);
  });
});
