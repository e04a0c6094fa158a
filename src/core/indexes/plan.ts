/**
 * The read planner: which index, if any, answers a list with a where filter, and which ranges of
 * it to read.
 *
 * An index is usable when the list's range lies inside the index's prefix and the filter is a
 * conjunction (`$and`, or fields side by side) that constrains the index's first field by
 * equality (`$eq`, `$in`) or a range (`$gt`, `$gte`, `$lt`, `$lte`, `$between`); further fields
 * are used while the ones before them are equalities. Case-insensitive and string operators do
 * not use an index. Whatever the index narrows, every candidate is checked against the whole
 * filter, so a plan changes how fast a list is, never what it returns.
 */
import { compareBytes, concatBytes, encodeKey, type KvKeyPart, keyId } from "../../codec/key.js";
import type { Filter, Path, ReadRange, Scalar } from "../../contract/index.js";
import type { Catalog, Compiled, StoredIndex } from "./catalog.js";
import { isInexact, KIND_NULL, KIND_ODD_STRING, KIND_STRING, operandParts } from "./fields.js";

/** Value combinations of `$in` over several fields, at most. */
const MAX_RANGES = 256;

export interface IndexPlan {
  readonly index: Compiled<StoredIndex>;
  /** Ranges of index keys to read, in index order. */
  readonly ranges: readonly { start: Uint8Array; end: Uint8Array }[];
  /**
   * Whether the index order is the entries' key order: one range, equality on every field. The
   * list then reads the index page by page; otherwise it gathers the candidates and sorts them.
   */
  readonly ordered: boolean;
}

/** The plan for `range` (stored keys of `catalog`'s namespace), or `null` to scan the range. */
export function planRead(catalog: Catalog, range: ReadRange, filter: Filter): IndexPlan | null {
  const conjuncts = flatten(filter);
  let best: IndexPlan | null = null;
  let bestScore = 0;
  for (const index of catalog.indexes) {
    if (index.def.state !== "ready" || !inside(range, index.covers)) continue;
    const found = planIndex(index, conjuncts);
    if (!found) continue;
    // Prefer equality on more fields, then an ordered read.
    const score = found.score * 2 + (found.plan.ordered ? 1 : 0);
    if (score > bestScore) {
      best = found.plan;
      bestScore = score;
    }
  }
  return best;
}

function flatten(filter: Filter): Filter[] {
  return filter.op === "and" ? filter.filters.flatMap(flatten) : [filter];
}

/** Whether `[start, end)` lies in the keys strictly longer than `prefix`. */
function inside(range: ReadRange, prefix: Uint8Array): boolean {
  return (
    compareBytes(range.start, prefix) > 0 && compareBytes(range.end, concatBytes(prefix, 0xff)) <= 0
  );
}

const samePath = (a: Path, b: Path) => a.length === b.length && a.every((s, i) => s === b[i]);

type Bound = { parts: KvKeyPart[]; inclusive: boolean };

function planIndex(
  index: Compiled<StoredIndex>,
  conjuncts: readonly Filter[],
): { plan: IndexPlan; score: number } | null {
  let prefixes: KvKeyPart[][] = [[]];
  let equalFields = 0;
  let lower: Bound | null = null;
  let upper: Bound | null = null;
  for (const path of index.paths) {
    const values = equalities(path, conjuncts);
    if (values) {
      const next: KvKeyPart[][] = [];
      for (const prefix of prefixes) for (const value of values) next.push([...prefix, ...value]);
      if (next.length > MAX_RANGES) return null;
      prefixes = next;
      equalFields++;
      continue;
    }
    const bounds = rangeOf(path, conjuncts);
    if (bounds) ({ lower, upper } = bounds);
    break;
  }
  if (equalFields === 0 && !lower && !upper) return null;
  const ranges = prefixes.map((prefix) => {
    if (!lower && !upper) {
      const start = encodeKey(prefix, index.entries);
      return { start, end: concatBytes(start, 0xff) };
    }
    const kind = (lower ?? upper)!.parts[0]!;
    const kindStart = encodeKey([...prefix, kind], index.entries);
    return {
      start: lower ? boundKey(index.entries, prefix, lower, !lower.inclusive) : kindStart,
      end: upper
        ? boundKey(index.entries, prefix, upper, upper.inclusive)
        : concatBytes(kindStart, 0xff),
    };
  });
  // Strings with lone surrogates sort apart (see `fields.ts`): a string range takes them all in.
  if ((lower ?? upper)?.parts[0] === KIND_STRING)
    for (const prefix of prefixes) {
      const start = encodeKey([...prefix, KIND_ODD_STRING], index.entries);
      ranges.push({ start, end: concatBytes(start, 0xff) });
    }
  const ordered = ranges.length === 1 && equalFields === index.paths.length;
  return {
    plan: { index, ranges: ranges.filter((r) => compareBytes(r.start, r.end) < 0), ordered },
    score: equalFields + (lower || upper ? 0.5 : 0),
  };
}

/** The key at a bound: past every key with that value when `after`. */
function boundKey(
  entries: Uint8Array,
  prefix: KvKeyPart[],
  bound: Bound,
  after: boolean,
): Uint8Array {
  const key = encodeKey([...prefix, ...bound.parts], entries);
  return after ? concatBytes(key, 0xff) : key;
}

/** The values an equality (`$eq`, `$in`) on `path` allows, as index parts; `null` if none constrains it. */
function equalities(path: Path, conjuncts: readonly Filter[]): KvKeyPart[][] | null {
  for (const filter of conjuncts) {
    if (filter.op === "eq" && !filter.ci && samePath(filter.path, path)) {
      const parts = operandParts(filter.value);
      if (parts) return [parts];
    }
    if (filter.op === "in" && samePath(filter.path, path) && filter.values.length > 0) {
      const all = filter.values.map(operandParts);
      if (all.every((p) => p !== null)) return dedupe(all as KvKeyPart[][]);
    }
  }
  return null;
}

function dedupe(values: KvKeyPart[][]): KvKeyPart[][] {
  const seen = new Map<string, KvKeyPart[]>();
  for (const v of values) seen.set(keyId(encodeKey(v)), v);
  return [...seen.values()];
}

/** The tightest bounds the range operators on `path` give, when they agree on the kind. */
function rangeOf(
  path: Path,
  conjuncts: readonly Filter[],
): { lower: Bound | null; upper: Bound | null } | null {
  let lower: Bound | null = null;
  let upper: Bound | null = null;
  let kind: KvKeyPart | null = null;
  const take = (value: Scalar, side: "lower" | "upper", inclusive: boolean): boolean => {
    const parts = operandParts(value);
    if (!parts || parts[0] === KIND_NULL || parts[0] === KIND_ODD_STRING) return false;
    if (kind !== null && kind !== parts[0]) return false;
    kind = parts[0]!;
    // A rounded bigint bound takes in its neighbours; the filter sorts them out.
    const bound = { parts, inclusive: inclusive || isInexact(value) };
    if (side === "lower") lower = tighter(lower, bound, 1);
    else upper = tighter(upper, bound, -1);
    return true;
  };
  for (const filter of conjuncts) {
    if (!("path" in filter) || !samePath(filter.path, path)) continue;
    switch (filter.op) {
      case "gt":
      case "gte":
        if (filter.ci || !take(filter.value, "lower", filter.op === "gte")) return null;
        break;
      case "lt":
      case "lte":
        if (filter.ci || !take(filter.value, "upper", filter.op === "lte")) return null;
        break;
      case "between":
        if (!take(filter.low, "lower", true) || !take(filter.high, "upper", true)) return null;
        break;
    }
  }
  return lower || upper ? { lower, upper } : null;
}

/** The narrower of two bounds on one side (`direction` 1 for lower bounds, -1 for upper). */
function tighter(current: Bound | null, next: Bound, direction: 1 | -1): Bound {
  if (!current) return next;
  const order = compareBytes(encodeKey(next.parts), encodeKey(current.parts)) * direction;
  if (order > 0) return next;
  if (order < 0) return current;
  return next.inclusive ? current : next;
}
