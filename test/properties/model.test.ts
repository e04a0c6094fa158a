/**
 * Random operation sequences run against Cellar and against a small reference model of the
 * documented semantics (Deno KV's, plus Cellar's append/prepend, paginate and expiry sweep); every
 * observable result must agree. Versionstamps are compared only by their equality and order
 * relations, never by their text.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect, isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { afterAll, describe, it } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import {
  type Kv,
  type KvCommitError,
  type KvCommitResult,
  type KvEntryMaybe,
  KvError,
  type KvKey,
  type KvKeyPart,
  type KvListSelector,
  KvU64,
  openKv,
} from "../../src/index.js";

const MAX_U64 = (1n << 64n) - 1n;
const BOGUS_VERSIONSTAMP = "ffffffffffffffffffff";

type VersionstampRef =
  | { kind: "null" }
  | { kind: "fresh" }
  | { kind: "seen"; index: number }
  | { kind: "bogus" };

type SetMutation = { type: "set"; key: KvKey; value: unknown; expireIn?: number };

type Mutation =
  | SetMutation
  | { type: "delete"; key: KvKey }
  | { type: "sum" | "min" | "max"; key: KvKey; n: bigint }
  | { type: "append" | "prepend"; key: KvKey; items: unknown[] };

interface AtomicSpec {
  checks: { key: KvKey; ref: VersionstampRef }[];
  mutations: Mutation[];
}

type Op =
  | { op: "set"; set: SetMutation }
  | { op: "delete"; key: KvKey }
  | { op: "get"; key: KvKey }
  | { op: "getMany"; keys: KvKey[] }
  | { op: "atomic"; atomic: AtomicSpec }
  | { op: "concurrent"; atomics: AtomicSpec[] }
  | { op: "list"; selector: KvListSelector; limit?: number; reverse: boolean; batchSize?: number }
  | { op: "resume"; selector: KvListSelector; limit: number; reverse: boolean }
  | { op: "paginate"; selector: KvListSelector; limit: number; reverse: boolean }
  | { op: "count"; selector: KvListSelector }
  | { op: "tick"; ms: number }
  | { op: "sweep" };

type FactKind =
  | "key"
  | "value"
  | "ok"
  | "error"
  | "count"
  | "length"
  | "hasMore"
  | "cursorNull"
  | "cursorEmpty";

/** One observable result. Stamps are versionstamps: strings from Cellar, numbers from the model. */
type Fact = readonly ["stamp", string | number | null] | readonly [FactKind, unknown];

const keyPart: fc.Arbitrary<KvKeyPart> = fc.constantFrom<KvKeyPart>(
  "a",
  "b",
  "",
  "a\0",
  "é",
  0,
  -0,
  1,
  -1.5,
  Infinity,
  Number.NaN,
  0n,
  1n,
  -1n,
  1n << 70n,
  true,
  false,
  new Uint8Array(),
  Uint8Array.of(0),
  Uint8Array.of(1, 2),
);

// Most operations hit a few keys that share prefixes, so that writes meet earlier writes.
const hotKeys: KvKey[] = [
  ["a"],
  ["b"],
  ["a", "x"],
  ["a", 1n],
  ["a", "x", true],
  ["a", ""],
  ["b", 0],
  ["b", -0],
  [1n],
  [Uint8Array.of(0)],
];
const hotPrefixes: KvKey[] = [[], ["a"], ["b"], ["a", "x"]];

const key = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...hotKeys) },
  { weight: 1, arbitrary: fc.array(keyPart, { minLength: 1, maxLength: 3 }) },
);
/** Keys for sum/min/max/append/prepend: fewer of them, so that they meet values of their type. */
const targetKey = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<KvKey>(["a"], ["a", "x"], ["b", 0]) },
  { weight: 1, arbitrary: key },
);
const prefix = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...hotPrefixes) },
  { weight: 1, arbitrary: fc.array(keyPart, { maxLength: 2 }) },
);
const inside = (p: KvKey) =>
  fc.array(keyPart, { minLength: 1, maxLength: 2 }).map((tail) => [...p, ...tail]);

const selector: fc.Arbitrary<KvListSelector> = fc.oneof(
  { weight: 3, arbitrary: prefix.map((p) => ({ prefix: p })) },
  { weight: 2, arbitrary: prefix.chain((p) => inside(p).map((start) => ({ prefix: p, start }))) },
  { weight: 2, arbitrary: prefix.chain((p) => inside(p).map((end) => ({ prefix: p, end }))) },
  { weight: 1, arbitrary: fc.tuple(prefix, key).map(([p, start]) => ({ prefix: p, start })) },
  { weight: 3, arbitrary: fc.tuple(prefix, prefix).map(([start, end]) => ({ start, end })) },
);

const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: 5n }),
  fc.constantFrom(MAX_U64, MAX_U64 - 1n),
  fc.bigInt({ min: 0n, max: MAX_U64 }),
);

// Sparse arrays are left out: Cellar's append/prepend turn their holes into undefined.
const value: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  u64.map((n) => new KvU64(n)),
  fc.array(fc.oneof(fc.integer(), fc.string(), fc.constant(undefined)), { maxLength: 3 }),
  fc.constantFrom(undefined, Number.NaN, -0, null),
  fc.bigInt(),
  fc.date({ noInvalidDate: true }),
  fc.uint8Array({ maxLength: 4 }),
  fc
    .array(fc.tuple(fc.string({ maxLength: 2 }), fc.integer()), { maxLength: 2 })
    .map((e) => new Map(e)),
);

const expireIn = fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined, freq: 4 });

const ref: fc.Arbitrary<VersionstampRef> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: "null" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "fresh" as const }) },
  { weight: 2, arbitrary: fc.nat(40).map((index) => ({ kind: "seen" as const, index })) },
  { weight: 1, arbitrary: fc.constant({ kind: "bogus" as const }) },
);

const setMutation: fc.Arbitrary<SetMutation> = fc.record(
  { type: fc.constant("set" as const), key, value, expireIn },
  { requiredKeys: ["type", "key", "value"] },
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: setMutation },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("delete" as const), key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constantFrom("sum" as const, "min" as const, "max" as const),
      key: targetKey,
      n: u64,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constantFrom("append" as const, "prepend" as const),
      key: targetKey,
      items: fc.array(value, { maxLength: 3 }),
    }),
  },
);

const atomicSpec: fc.Arbitrary<AtomicSpec> = fc.record({
  checks: fc.array(fc.record({ key, ref }), { maxLength: 2 }),
  mutations: fc.array(mutation, { maxLength: 4 }),
});

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("set" as const), set: setMutation }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("get" as const), key }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("getMany" as const),
      keys: fc.array(key, { maxLength: 4 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("atomic" as const), atomic: atomicSpec }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("concurrent" as const),
      atomics: fc.array(atomicSpec, { minLength: 2, maxLength: 4 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record(
      {
        op: fc.constant("list" as const),
        selector,
        limit: fc.integer({ min: 1, max: 6 }),
        reverse: fc.boolean(),
        batchSize: fc.integer({ min: 1, max: 4 }),
      },
      { requiredKeys: ["op", "selector", "reverse"] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("resume" as const),
      selector,
      limit: fc.integer({ min: 1, max: 4 }),
      reverse: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("paginate" as const),
      selector,
      limit: fc.integer({ min: 1, max: 3 }),
      reverse: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("count" as const), selector }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 30 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "sweep" as const }) },
);

const sequence = fc.array(op, { minLength: 1, maxLength: 25, size: "max" });

/** Appended to every sequence, so that the whole final state is compared. */
const FINAL_LIST: Op = { op: "list", selector: { prefix: [] }, reverse: false };

interface ModelEntry {
  readonly bytes: Buffer;
  readonly key: KvKey;
  readonly value: unknown;
  readonly versionstamp: number;
  readonly expiresAt: number | null;
}

class ModelMutationError extends Error {}

const bytesOf = (k: KvKey): Buffer => Buffer.from(encodeKey(k));

/** What reading a stored value gives back: structured clone, except a top-level KvU64 stays one. */
const stored = (v: unknown): unknown =>
  v instanceof KvU64 ? new KvU64(v.value) : structuredClone(v);

function startsWithBytes(bytes: Buffer, p: Buffer): boolean {
  return bytes.length > p.length && bytes.subarray(0, p.length).equals(p);
}

/** A selector's byte range, from Deno KV's documented rules; null when the selector is invalid. */
function modelRange(s: KvListSelector): { start: Buffer; end: Buffer } | null {
  const { prefix: p, start, end } = s as { prefix?: KvKey; start?: KvKey; end?: KvKey };
  if (p !== undefined) {
    const pb = bytesOf(p);
    const lo = start === undefined ? Buffer.concat([pb, Buffer.of(0)]) : bytesOf(start);
    const hi = end === undefined ? Buffer.concat([pb, Buffer.of(0xff)]) : bytesOf(end);
    if (start !== undefined && !startsWithBytes(lo, pb)) return null;
    if (end !== undefined && !startsWithBytes(hi, pb)) return null;
    return { start: lo, end: hi };
  }
  const lo = bytesOf(start!);
  const hi = bytesOf(end!);
  return Buffer.compare(lo, hi) > 0 ? null : { start: lo, end: hi };
}

class Model {
  entries: ModelEntry[] = [];
  version = 0;
  readonly seen: number[] = [];

  constructor(private readonly clock: { now: number }) {}

  live(): ModelEntry[] {
    return this.entries.filter((e) => e.expiresAt === null || e.expiresAt > this.clock.now);
  }

  find(k: KvKey): ModelEntry | undefined {
    const bytes = bytesOf(k);
    return this.live().find((e) => e.bytes.equals(bytes));
  }

  range(s: KvListSelector): ModelEntry[] | null {
    const r = modelRange(s);
    if (r === null) return null;
    return this.live().filter(
      (e) => Buffer.compare(e.bytes, r.start) >= 0 && Buffer.compare(e.bytes, r.end) < 0,
    );
  }

  resolve(r: VersionstampRef, k: KvKey): number | null {
    switch (r.kind) {
      case "null":
        return null;
      case "fresh":
        return this.find(k)?.versionstamp ?? null;
      case "seen":
        return this.seen.length === 0 ? null : this.seen[r.index % this.seen.length]!;
      case "bogus":
        return -1;
    }
  }

  /** Applies a write all or nothing; returns its versionstamp, null when a check fails. */
  commit(
    checks: { key: KvKey; versionstamp: number | null }[],
    mutations: Mutation[],
  ): number | null {
    for (const c of checks) {
      if ((this.find(c.key)?.versionstamp ?? null) !== c.versionstamp) return null;
    }
    const versionstamp = this.version + 1;
    const next = new Map<string, ModelEntry | null>();
    const current = (k: KvKey): ModelEntry | null => {
      const id = bytesOf(k).toString("hex");
      return next.has(id) ? next.get(id)! : (this.find(k) ?? null);
    };
    for (const m of mutations) {
      const bytes = bytesOf(m.key);
      const put = (v: unknown, expireIn?: number) =>
        next.set(bytes.toString("hex"), {
          bytes,
          key: m.key,
          value: v,
          versionstamp,
          expiresAt: expireIn === undefined ? null : this.clock.now + expireIn,
        });
      const old = current(m.key);
      switch (m.type) {
        case "set":
          put(stored(m.value), m.expireIn);
          break;
        case "delete":
          next.set(bytes.toString("hex"), null);
          break;
        case "sum":
        case "min":
        case "max": {
          if (old !== null && !(old.value instanceof KvU64)) throw new ModelMutationError(m.type);
          if (old === null) {
            put(new KvU64(m.n));
            break;
          }
          const a = (old.value as KvU64).value;
          const keepsOld = m.type === "min" ? a < m.n : a > m.n;
          put(new KvU64(m.type === "sum" ? (a + m.n) & MAX_U64 : keepsOld ? a : m.n));
          break;
        }
        case "append":
        case "prepend": {
          if (old !== null && !Array.isArray(old.value)) throw new ModelMutationError(m.type);
          const items = structuredClone(m.items);
          const existing = old === null ? [] : (old.value as unknown[]);
          put(m.type === "append" ? [...existing, ...items] : [...items, ...existing]);
          break;
        }
      }
    }
    this.version = versionstamp;
    for (const [id, entry] of next) {
      this.entries = this.entries.filter((e) => e.bytes.toString("hex") !== id);
      if (entry !== null) this.entries.push(entry);
    }
    this.entries.sort((x, y) => Buffer.compare(x.bytes, y.bytes));
    return versionstamp;
  }

  sweep(): number {
    const before = this.entries.length;
    this.entries = this.live();
    return before - this.entries.length;
  }
}

const expireOptions = (expireIn?: number) => (expireIn === undefined ? {} : { expireIn });

function commitFacts(versionstamp: string | number | null): Fact[] {
  if (versionstamp === null) return [["ok", false]];
  return [
    ["ok", true],
    ["stamp", versionstamp],
  ];
}

const entryFacts = (k: KvKey, v: unknown, stamp: string | number | null): Fact[] => [
  ["key", k],
  ["value", v],
  ["stamp", stamp],
];

const listFacts = (
  entries: { key: KvKey; value: unknown; versionstamp: string | number }[],
): Fact[] => [
  ["length", entries.length],
  ...entries.flatMap((e) => entryFacts(e.key, e.value, e.versionstamp)),
];

function orderFor<T>(items: T[], reverse: boolean, limit?: number): T[] {
  const ordered = reverse ? [...items].reverse() : items;
  return limit === undefined ? ordered : ordered.slice(0, limit);
}

function modelStep(model: Model, o: Op): Fact[] {
  const facts: Fact[] = [];
  const resolveChecks = (atomic: AtomicSpec) =>
    atomic.checks.map((c) => {
      if (c.ref.kind === "fresh") facts.push(["stamp", model.find(c.key)?.versionstamp ?? null]);
      return { key: c.key, versionstamp: model.resolve(c.ref, c.key) };
    });
  const commit = (
    checks: { key: KvKey; versionstamp: number | null }[],
    mutations: Mutation[],
  ): Fact[] => {
    try {
      return commitFacts(model.commit(checks, mutations));
    } catch (error) {
      if (!(error instanceof ModelMutationError)) throw error;
      return [["error", "INVALID_MUTATION"]];
    }
  };
  const entryOf = (k: KvKey): Fact[] => {
    const e = model.find(k);
    return entryFacts(k, e === undefined ? null : stored(e.value), e?.versionstamp ?? null);
  };
  const decoded = (entries: ModelEntry[]) =>
    entries.map((e) => ({ key: e.key, value: stored(e.value), versionstamp: e.versionstamp }));
  switch (o.op) {
    case "set":
      return [["stamp", model.commit([], [o.set])]];
    case "delete":
      model.commit([], [{ type: "delete", key: o.key }]);
      return [];
    case "get":
      return entryOf(o.key);
    case "getMany":
      return o.keys.flatMap(entryOf);
    case "atomic": {
      const checks = resolveChecks(o.atomic);
      return [...facts, ...commit(checks, o.atomic.mutations)];
    }
    case "concurrent": {
      const checks = o.atomics.map(resolveChecks);
      return [...facts, ...o.atomics.flatMap((a, i) => commit(checks[i]!, a.mutations))];
    }
    case "list": {
      const entries = model.range(o.selector);
      return entries === null
        ? [["error", "INVALID_SELECTOR"]]
        : listFacts(orderFor(decoded(entries), o.reverse, o.limit));
    }
    case "resume": {
      const entries = model.range(o.selector);
      if (entries === null) return [["error", "INVALID_SELECTOR"]];
      const all = orderFor(decoded(entries), o.reverse);
      const first = all.slice(0, o.limit);
      if (first.length < o.limit) return [...listFacts(first), ["cursorEmpty", true]];
      return [...listFacts(first), ...listFacts(all.slice(o.limit))];
    }
    case "paginate": {
      const entries = model.range(o.selector);
      if (entries === null) return [["error", "INVALID_SELECTOR"]];
      const all = orderFor(decoded(entries), o.reverse);
      const pages: Fact[] = [];
      for (let i = 0; ; i += o.limit) {
        const hasMore = all.length > i + o.limit;
        pages.push(
          ...listFacts(all.slice(i, i + o.limit)),
          ["hasMore", hasMore],
          ["cursorNull", !hasMore],
        );
        if (!hasMore) return pages;
      }
    }
    case "count": {
      const entries = model.range(o.selector);
      return entries === null ? [["error", "INVALID_SELECTOR"]] : [["count", entries.length]];
    }
    case "tick":
      return [];
    case "sweep":
      return [["count", model.sweep()]];
  }
}

function buildAtomic(kv: Kv, atomic: AtomicSpec, versionstamps: (string | null)[]) {
  const operation = kv.atomic();
  for (const [i, c] of atomic.checks.entries())
    operation.check({ key: c.key, versionstamp: versionstamps[i]! });
  for (const m of atomic.mutations) {
    switch (m.type) {
      case "set":
        operation.set(m.key, m.value, expireOptions(m.expireIn));
        break;
      case "delete":
        operation.delete(m.key);
        break;
      case "sum":
      case "min":
      case "max":
        operation[m.type](m.key, m.n);
        break;
      case "append":
      case "prepend":
        operation[m.type](m.key, m.items);
        break;
    }
  }
  return operation;
}

async function errorCode<T>(run: () => Promise<T>): Promise<T | Fact> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof KvError) return ["error", error.code] as const;
    throw error;
  }
}

const isFact = (x: unknown): x is Fact => Array.isArray(x) && x[0] === "error";

async function collectList(kv: Kv, s: KvListSelector, options: Parameters<Kv["list"]>[1]) {
  const iterator = kv.list(s, options);
  const entries: { key: KvKey; value: unknown; versionstamp: string }[] = [];
  for await (const e of iterator) entries.push(e);
  return { entries, cursor: iterator.cursor };
}

async function cellarStep(kv: Kv, seen: string[], o: Op): Promise<Fact[]> {
  const resolve = async (atomic: AtomicSpec, facts: Fact[]): Promise<(string | null)[]> => {
    const out: (string | null)[] = [];
    for (const c of atomic.checks) {
      if (c.ref.kind === "fresh") {
        const { versionstamp } = await kv.get(c.key);
        facts.push(["stamp", versionstamp]);
        out.push(versionstamp);
      } else if (c.ref.kind === "seen")
        out.push(seen.length === 0 ? null : seen[c.ref.index % seen.length]!);
      else out.push(c.ref.kind === "bogus" ? BOGUS_VERSIONSTAMP : null);
    }
    return out;
  };
  const committed = async (commit: Promise<KvCommitResult | KvCommitError>): Promise<Fact[]> => {
    const result = await errorCode(() => commit);
    if (isFact(result)) return [result];
    return commitFacts(result.ok ? result.versionstamp : null);
  };
  const entryOf = (e: KvEntryMaybe): Fact[] => entryFacts(e.key, e.value, e.versionstamp);
  switch (o.op) {
    case "set": {
      const { key, value, expireIn } = o.set;
      return [["stamp", (await kv.set(key, value, expireOptions(expireIn))).versionstamp]];
    }
    case "delete":
      await kv.delete(o.key);
      return [];
    case "get":
      return entryOf(await kv.get(o.key));
    case "getMany":
      return (await kv.getMany(o.keys)).flatMap(entryOf);
    case "atomic": {
      const facts: Fact[] = [];
      const versionstamps = await resolve(o.atomic, facts);
      return [...facts, ...(await committed(buildAtomic(kv, o.atomic, versionstamps).commit()))];
    }
    case "concurrent": {
      const facts: Fact[] = [];
      const resolved: (string | null)[][] = [];
      for (const a of o.atomics) resolved.push(await resolve(a, facts));
      const commits = o.atomics.map((a, i) => committed(buildAtomic(kv, a, resolved[i]!).commit()));
      for (const commit of commits) facts.push(...(await commit));
      return facts;
    }
    case "list": {
      const result = await errorCode(() =>
        collectList(kv, o.selector, {
          reverse: o.reverse,
          ...(o.limit !== undefined && { limit: o.limit }),
          ...(o.batchSize !== undefined && { batchSize: o.batchSize }),
        }),
      );
      return isFact(result) ? [result] : listFacts(result.entries);
    }
    case "resume": {
      const first = await errorCode(() =>
        collectList(kv, o.selector, { reverse: o.reverse, limit: o.limit }),
      );
      if (isFact(first)) return [first];
      if (first.entries.length < o.limit)
        return [...listFacts(first.entries), ["cursorEmpty", first.cursor === ""]];
      const rest = await collectList(kv, o.selector, { reverse: o.reverse, cursor: first.cursor });
      return [...listFacts(first.entries), ...listFacts(rest.entries)];
    }
    case "paginate": {
      const facts: Fact[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 100; pages++) {
        const page = await errorCode(() =>
          kv.paginate(o.selector, {
            limit: o.limit,
            reverse: o.reverse,
            ...(cursor !== undefined && { cursor }),
          }),
        );
        if (isFact(page)) return [page];
        facts.push(
          ...listFacts(page.entries),
          ["hasMore", page.hasMore],
          ["cursorNull", page.cursor === null],
        );
        if (page.cursor === null) return facts;
        cursor = page.cursor;
      }
      throw new Error("paginate did not finish within 100 pages");
    }
    case "count": {
      const n = await errorCode(() => kv.count(o.selector));
      return isFact(n) ? [n] : [["count", n]];
    }
    case "tick":
      return [];
    case "sweep":
      return [["count", await kv.sweepExpired()]];
  }
}

/** Checks that Cellar's versionstamps relate to each other as the model's do. */
class StampRelation {
  readonly #pairs: [string, number][] = [];

  add(actual: string, expected: number): string | null {
    for (const [a, e] of this.#pairs) {
      const actualOrder = actual === a ? 0 : actual < a ? -1 : 1;
      if (actualOrder !== Math.sign(expected - e)) {
        return `versionstamp ${actual} compares ${actualOrder} to ${a}, the model expects ${Math.sign(expected - e)}`;
      }
    }
    this.#pairs.push([actual, expected]);
    return null;
  }
}

function compareFacts(
  actual: Fact[],
  expected: Fact[],
  relation: StampRelation,
  seen: { cellar: string[]; model: number[] },
): string | null {
  if (actual.length !== expected.length || actual.some((f, i) => f[0] !== expected[i]![0])) {
    return "the results have different shapes";
  }
  for (let i = 0; i < actual.length; i++) {
    const [kind, a] = actual[i]!;
    const e = expected[i]![1];
    if (kind === "stamp") {
      if ((a === null) !== (e === null))
        return `fact ${i}: versionstamp ${a} where the model has ${e}`;
      if (a === null) continue;
      const problem = relation.add(a as string, e as number);
      if (problem) return `fact ${i}: ${problem}`;
      seen.cellar.push(a as string);
      seen.model.push(e as number);
    } else if (!isDeepStrictEqual(a, e)) {
      return `fact ${i} (${kind}) differs`;
    }
  }
  return null;
}

const show = (x: unknown) => inspect(x, { depth: 8, breakLength: 140 });

async function runAgainstModel(kv: Kv, clock: { now: number }, ops: Op[]): Promise<void> {
  const model = new Model(clock);
  const seen = { cellar: [] as string[], model: model.seen };
  const relation = new StampRelation();
  try {
    for (const [i, o] of [...ops, FINAL_LIST].entries()) {
      if (o.op === "tick") clock.now += o.ms;
      const actual = await cellarStep(kv, seen.cellar, o);
      const expected = modelStep(model, o);
      const problem = compareFacts(actual, expected, relation, seen);
      if (problem) {
        throw new Error(
          `step ${i} ${show(o)}: ${problem}\n  cellar: ${show(actual)}\n  model:  ${show(expected)}`,
        );
      }
    }
  } finally {
    await kv.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), "cellar-model-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const targets: [string, (clock: { now: number }) => Promise<Kv>][] = [
  ["memory", (clock) => openKv(undefined, { clock: () => clock.now, sweepInterval: 0 })],
  [
    "sqlite",
    (clock) =>
      openKv(join(dir, `model-${files++}.db`), { clock: () => clock.now, sweepInterval: 0 }),
  ],
];

describe.each(targets)("Cellar (%s) against the reference model", (_name, open) => {
  it("agrees on every observable result of random operation sequences", async () => {
    await fc.assert(
      fc.asyncProperty(sequence, async (ops) => {
        const clock = { now: 1_700_000_000_000 };
        await runAgainstModel(await open(clock), clock, ops);
      }),
      { numRuns: 100 },
    );
  });
});
