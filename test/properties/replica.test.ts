/**
 * The client store's reconciliation against a model of the server: local writes made offline,
 * commits of other clients interleaved with them on the server, and the server's answers and
 * changes delivered in any order that keeps each stream's own order (the socket's). Whatever the
 * order, and whether or not an answer was lost and the write resent (answered "duplicate"), the
 * view never shows an older server version of a key after a newer one, a key with a
 * pending write shows that write, and in the end the view equals the server's state.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatVersionstamp } from "../../src/codec/versionstamp.js";
import { Replica } from "../../src/offline/replica.js";
import type { ClientEvent } from "../../src/offline/types.js";
import type { SyncEntry } from "../../src/wire/sync.js";

const KEYS = [["a"], ["b"], ["c"]] as const;

type Op =
  | { kind: "local"; key: number; value: number | null }
  | { kind: "remote"; key: number; value: number | null };

type Delivery =
  | { stream: "changes"; versionstamp: string; entries: SyncEntry[] }
  | { stream: "answers"; id: number; versionstamp: string; entries: SyncEntry[] };

const op = fc.record({
  kind: fc.constantFrom("local" as const, "remote" as const),
  key: fc.integer({ min: 0, max: KEYS.length - 1 }),
  value: fc.option(fc.integer({ min: 0, max: 99 }), { nil: null }),
});

/** Runs the ops on a last-writer-wins server; returns both streams and the final state. */
function serve(ops: Op[]) {
  const state = new Map<number, { value: number; versionstamp: string }>();
  const changes: Delivery[] = [];
  const answers: Delivery[] = [];
  let version = 0;
  let writeId = 0;
  for (const o of ops) {
    const versionstamp = formatVersionstamp(++version);
    const entry: SyncEntry =
      o.value === null
        ? { key: KEYS[o.key]!, value: null, versionstamp, deleted: true }
        : { key: KEYS[o.key]!, value: o.value, versionstamp };
    if (o.value === null) state.delete(o.key);
    else state.set(o.key, { value: o.value, versionstamp });
    changes.push({ stream: "changes", versionstamp, entries: [entry] });
    if (o.kind === "local")
      answers.push({ stream: "answers", id: ++writeId, versionstamp, entries: [entry] });
  }
  return { changes, answers, state };
}

describe("client store reconciliation (model)", () => {
  it("never shows an older version, shows pending writes, and converges, in any delivery order", () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 12 }),
        fc.array(fc.boolean(), { maxLength: 30 }),
        fc.array(fc.boolean(), { maxLength: 12 }),
        (ops, picks, lost) => {
          const events: ClientEvent[] = [];
          const replica = new Replica((event) => events.push(event));
          replica.load({ entries: [], outbox: [], meta: {} });
          // The client's writes are made offline, before the server sees any of them.
          for (const o of ops.filter((o) => o.kind === "local")) {
            const key = KEYS[o.key]!;
            replica.write(
              [o.value === null ? { type: "delete", key } : { type: "set", key, value: o.value }],
              [],
            );
          }
          const { changes, answers, state } = serve(ops);
          const newest = new Map<string, string>();
          const check = () => {
            for (const key of KEYS) {
              const entry = replica.get(key);
              if (entry.pending) continue;
              if (entry.versionstamp === null) continue;
              const seen = newest.get(key[0]!) ?? "";
              expect(entry.versionstamp >= seen).toBe(true);
              newest.set(key[0]!, entry.versionstamp);
            }
          };
          let c = 0;
          let a = 0;
          let p = 0;
          while (c < changes.length || a < answers.length) {
            const takeChange =
              a >= answers.length ||
              (c < changes.length && (picks[p++ % Math.max(picks.length, 1)] ?? true));
            const d = takeChange ? changes[c++]! : answers[a++]!;
            if (d.stream === "changes") replica.changes(d.versionstamp, d.entries);
            else if (lost[d.id - 1]) replica.ack(d.id, d.versionstamp, [], true);
            else replica.ack(d.id, d.versionstamp, d.entries, false);
            check();
          }
          expect(replica.pendingCount).toBe(0);
          KEYS.forEach((key, i) => {
            const entry = replica.get(key);
            const server = state.get(i);
            expect({ exists: entry.exists, value: entry.value, pending: entry.pending }).toEqual({
              exists: server !== undefined,
              value: server?.value ?? null,
              pending: false,
            });
            if (server) expect(entry.versionstamp).toBe(server.versionstamp);
          });
        },
      ),
      { numRuns: 500 },
    );
  });

  it("shows a pending write until its answer arrives, and the answer's entry (or a later one) after", () => {
    const replica = new Replica(() => {});
    replica.load({ entries: [], outbox: [], meta: {} });
    const key = ["k"];
    const id = replica.write([{ type: "set", key, value: "mine" }], []);
    // Another client's later commit arrives before the answer to this write: still pending.
    replica.changes(formatVersionstamp(1), [
      { key, value: "mine", versionstamp: formatVersionstamp(1) },
    ]);
    replica.changes(formatVersionstamp(2), [
      { key, value: "theirs", versionstamp: formatVersionstamp(2) },
    ]);
    expect(replica.get(key)).toMatchObject({ value: "mine", pending: true });
    replica.ack(
      id,
      formatVersionstamp(1),
      [{ key, value: "mine", versionstamp: formatVersionstamp(1) }],
      false,
    );
    expect(replica.get(key)).toMatchObject({
      value: "theirs",
      pending: false,
      versionstamp: formatVersionstamp(2),
    });
  });

  it("keeps a resent write's value shown until the feed reaches the commit that applied it", () => {
    const replica = new Replica(() => {});
    replica.load({ entries: [], outbox: [], meta: {} });
    const key = ["k"];
    const id = replica.write([{ type: "set", key, value: "v" }], []);
    replica.ack(id, formatVersionstamp(5), [], true);
    expect(replica.get(key)).toMatchObject({ value: "v", pending: true });
    expect(replica.pendingCount).toBe(0);
    replica.changes(formatVersionstamp(5), [
      { key, value: "v", versionstamp: formatVersionstamp(5) },
    ]);
    expect(replica.get(key)).toMatchObject({
      value: "v",
      pending: false,
      versionstamp: formatVersionstamp(5),
    });
  });
});
