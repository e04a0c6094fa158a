/**
 * The operation interpreter the Deno KV oracle test runs on both sides, and, when run as a script
 * (`node --import tsx deno-kv-child.ts`), the child process that runs it on `@deno/kv`.
 *
 * The child keeps its databases in the directory given as its argument, reads one JSON line per
 * sequence, `{ "ops": [...] }`, and answers one line per operation, `{ "step": i, "facts": [...] }`,
 * then `{ "done": true }`. Answering per operation lets the parent compare what finished before
 * `@deno/kv` stops responding.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

/**
 * A key part on the wire: strings, numbers (the ones JSON cannot carry as strings), bigints
 * (decimal), bytes (hex) and booleans.
 */
export type WirePart =
  | ["s", string]
  | ["n", number | string]
  | ["i", string]
  | ["b", string]
  | ["t", boolean];
export type WireKey = WirePart[];
/** A value on the wire: a JSON value, or a KvU64 as a decimal string. */
export type WireValue = ["json", unknown] | ["u64", string];

export interface WireSelector {
  prefix?: WireKey;
  start?: WireKey;
  end?: WireKey;
}

export type WireRef =
  | { kind: "null" }
  | { kind: "fresh" }
  | { kind: "seen"; index: number }
  | { kind: "bogus" };

export type WireMutation =
  | { type: "set"; key: WireKey; value: WireValue }
  | { type: "delete"; key: WireKey }
  | { type: "sum" | "min" | "max"; key: WireKey; n: string };

export type WireOp =
  | { op: "set"; key: WireKey; value: WireValue }
  | { op: "delete"; key: WireKey }
  | { op: "get"; key: WireKey }
  | { op: "getMany"; keys: WireKey[] }
  | { op: "atomic"; checks: { key: WireKey; ref: WireRef }[]; mutations: WireMutation[] }
  | { op: "list"; selector: WireSelector; limit?: number; reverse: boolean; batchSize?: number }
  | { op: "resume"; selector: WireSelector; limit: number; reverse: boolean }
  | { op: "count"; selector: WireSelector };

/** One observable result; `stamp` facts are compared by order relations only. */
export type Fact =
  | [kind: "stamp", versionstamp: string | null]
  | [kind: "key" | "value" | "ok" | "error" | "count" | "length" | "short", payload: unknown];

export const BOGUS_VERSIONSTAMP = "ffffffffffffffffffff";

type Part = Uint8Array | string | number | bigint | boolean;
type Key = readonly Part[];
type Selector =
  | { prefix: Key }
  | { prefix: Key; start: Key }
  | { prefix: Key; end: Key }
  | { start: Key; end: Key };

interface OracleEntry {
  readonly key: Key;
  readonly value: unknown;
  readonly versionstamp: string | null;
}

interface OracleAtomic {
  check(check: { key: Key; versionstamp: string | null }): OracleAtomic;
  set(key: Key, value: unknown): OracleAtomic;
  delete(key: Key): OracleAtomic;
  sum(key: Key, n: bigint): OracleAtomic;
  min(key: Key, n: bigint): OracleAtomic;
  max(key: Key, n: bigint): OracleAtomic;
  commit(): Promise<{ ok: boolean; versionstamp?: string }>;
}

/** What the interpreter needs of a database; each side adapts its own client to it. */
export interface OracleKv {
  get(key: Key): Promise<OracleEntry>;
  getMany(keys: Key[]): Promise<readonly OracleEntry[]>;
  set(key: Key, value: unknown): Promise<{ versionstamp: string }>;
  delete(key: Key): Promise<void>;
  list(
    selector: Selector,
    options: { limit?: number; reverse?: boolean; batchSize?: number; cursor?: string },
  ): AsyncIterable<OracleEntry> & { readonly cursor: string };
  atomic(): OracleAtomic;
  count(selector: Selector): Promise<number>;
  u64(n: bigint): unknown;
  isU64(value: unknown): value is { readonly value: bigint };
  /**
   * `@deno/kv` 0.14 returns the entry equal to the prefix at the end of a reverse prefix listing,
   * which Deno KV excludes; the Deno side drops it so that the comparison keeps to the contract.
   */
  readonly dropsPrefixEntry?: boolean;
}

function fromWirePart([tag, v]: WirePart): Part {
  if (tag === "i") return BigInt(v);
  if (tag === "b") return Uint8Array.from(Buffer.from(v, "hex"));
  if (tag === "n" && typeof v === "string") return Number(v);
  return v;
}

export const fromWireKey = (key: WireKey): Key => key.map(fromWirePart);

export function toWireKey(key: Key): WireKey {
  return key.map((part): WirePart => {
    if (part instanceof Uint8Array) return ["b", Buffer.from(part).toString("hex")];
    if (typeof part === "string") return ["s", part];
    if (typeof part === "bigint") return ["i", part.toString()];
    if (typeof part === "boolean") return ["t", part];
    return ["n", Object.is(part, -0) ? "-0" : Number.isFinite(part) ? part : String(part)];
  });
}

function fromWireSelector(s: WireSelector): Selector {
  const out: Record<string, Key> = {};
  for (const name of ["prefix", "start", "end"] as const) {
    const k = s[name];
    if (k !== undefined) out[name] = fromWireKey(k);
  }
  return out as unknown as Selector;
}

const fromWireValue = (kv: OracleKv, [tag, v]: WireValue): unknown =>
  tag === "u64" ? kv.u64(BigInt(v as string)) : v;

const toWireValue = (kv: OracleKv, value: unknown): WireValue =>
  kv.isU64(value) ? ["u64", value.value.toString()] : ["json", value];

async function attempt(run: () => Promise<Fact[]>): Promise<Fact[]> {
  try {
    return await run();
  } catch {
    return [["error", true]];
  }
}

function sameKey(a: Key, b: Key): boolean {
  return JSON.stringify(toWireKey(a)) === JSON.stringify(toWireKey(b));
}

async function listEntries(
  kv: OracleKv,
  selector: Selector,
  options: Parameters<OracleKv["list"]>[1],
) {
  const iterator = kv.list(selector, options);
  const entries: OracleEntry[] = [];
  const prefix = "prefix" in selector ? selector.prefix : undefined;
  for await (const entry of iterator) {
    if (kv.dropsPrefixEntry && prefix !== undefined && sameKey(entry.key, prefix)) continue;
    entries.push(entry);
  }
  return { entries, cursor: () => iterator.cursor };
}

function entryFacts(kv: OracleKv, entry: OracleEntry, withKey: boolean): Fact[] {
  const facts: Fact[] = withKey ? [["key", toWireKey(entry.key)]] : [];
  facts.push(
    ["value", entry.versionstamp === null ? null : toWireValue(kv, entry.value)],
    ["stamp", entry.versionstamp],
  );
  return facts;
}

const listFacts = (kv: OracleKv, entries: OracleEntry[]): Fact[] => [
  ["length", entries.length],
  ...entries.flatMap((e) => entryFacts(kv, e, true)),
];

async function step(kv: OracleKv, op: WireOp, seen: readonly string[]): Promise<Fact[]> {
  switch (op.op) {
    case "set":
      return [
        ["stamp", (await kv.set(fromWireKey(op.key), fromWireValue(kv, op.value))).versionstamp],
      ];
    case "delete":
      await kv.delete(fromWireKey(op.key));
      return [];
    case "get":
      return entryFacts(kv, await kv.get(fromWireKey(op.key)), false);
    case "getMany":
      return (await kv.getMany(op.keys.map(fromWireKey))).flatMap((e) => entryFacts(kv, e, false));
    case "atomic": {
      const facts: Fact[] = [];
      const operation = kv.atomic();
      for (const { key, ref } of op.checks) {
        let versionstamp: string | null = null;
        if (ref.kind === "fresh") {
          versionstamp = (await kv.get(fromWireKey(key))).versionstamp;
          facts.push(["stamp", versionstamp]);
        } else if (ref.kind === "seen")
          versionstamp = seen.length === 0 ? null : seen[ref.index % seen.length]!;
        else if (ref.kind === "bogus") versionstamp = BOGUS_VERSIONSTAMP;
        operation.check({ key: fromWireKey(key), versionstamp });
      }
      return [
        ...facts,
        ...(await attempt(async () => {
          for (const m of op.mutations) {
            const key = fromWireKey(m.key);
            if (m.type === "set") operation.set(key, fromWireValue(kv, m.value));
            else if (m.type === "delete") operation.delete(key);
            else operation[m.type](key, BigInt(m.n));
          }
          const result = await operation.commit();
          return result.ok
            ? [
                ["ok", true],
                ["stamp", result.versionstamp!],
              ]
            : [["ok", false]];
        })),
      ];
    }
    case "list":
      return attempt(async () => {
        const { entries } = await listEntries(kv, fromWireSelector(op.selector), {
          reverse: op.reverse,
          ...(op.limit !== undefined && { limit: op.limit }),
          ...(op.batchSize !== undefined && { batchSize: op.batchSize }),
        });
        return listFacts(kv, entries);
      });
    case "resume":
      return attempt(async () => {
        const selector = fromWireSelector(op.selector);
        const first = await listEntries(kv, selector, { reverse: op.reverse, limit: op.limit });
        if (first.entries.length < op.limit)
          return [...listFacts(kv, first.entries), ["short", true]];
        const rest = await listEntries(kv, selector, {
          reverse: op.reverse,
          cursor: first.cursor(),
        });
        return [...listFacts(kv, first.entries), ...listFacts(kv, rest.entries)];
      });
    case "count":
      return attempt(async () => [["count", await kv.count(fromWireSelector(op.selector))]]);
  }
}

/** Runs `ops` in order, reporting each operation's facts as soon as it finishes. */
export async function runOps(
  kv: OracleKv,
  ops: readonly WireOp[],
  report: (step: number, facts: Fact[]) => void,
): Promise<void> {
  const seen: string[] = [];
  for (const [i, op] of ops.entries()) {
    const facts = await step(kv, op, seen);
    for (const [kind, v] of facts) if (kind === "stamp" && typeof v === "string") seen.push(v);
    report(i, facts);
  }
}

/** Serves sequences from stdin, keeping each sequence's database in `dir`. */
async function main(dir: string): Promise<void> {
  const { openKv, KvU64 } = await import("@deno/kv");
  const write = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`);
  let sequences = 0;
  write({ ready: true });
  for await (const line of createInterface({ input: process.stdin })) {
    const { ops } = JSON.parse(line) as { ops: WireOp[] };
    const kv = await openKv(join(dir, `deno-${process.pid}-${sequences++}.db`));
    const adapter: OracleKv = {
      get: (key) => kv.get(key),
      getMany: (keys) => kv.getMany(keys),
      set: (key, value) => kv.set(key, value),
      delete: (key) => kv.delete(key),
      list: (selector, options) => kv.list(selector, options),
      atomic: () => kv.atomic(),
      count: async (selector) => (await listEntries(adapter, selector, {})).entries.length,
      u64: (n) => new KvU64(n),
      isU64: (value): value is { value: bigint } => value instanceof KvU64,
      dropsPrefixEntry: true,
    };
    try {
      await runOps(adapter, ops, (step, facts) => write({ step, facts }));
      write({ done: true });
    } catch (error) {
      write({ fatal: String((error as Error)?.stack ?? error) });
    } finally {
      kv.close();
    }
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv[2] ?? tmpdir());
}
