/**
 * Index maintenance on the write path: given a write and the catalogs of the namespaces it
 * writes, the index entries, search documents and checks that go into the same atomic write.
 *
 * The entries' states before the write are read first (one snapshot); the write then carries a
 * check on each of them, and on each unique value's range, so if anything changed in between
 * the commit fails and is planned again from a new read. The entries' states after the write
 * are computed here with the drivers' own rules (`contract/apply.ts`).
 */
import { compareBytes, keyId } from "../../codec/key.js";
import { decodeValue, encodeValue, type RawValue } from "../../codec/value.js";
import { applyMutation, type StoredEntry } from "../../contract/apply.js";
import { compareScalars, fieldAt } from "../../contract/filter.js";
import type {
  AtomicWrite,
  Check,
  Mutation,
  RangeCheck,
  RawEntry,
  ReadRange,
  SearchDoc,
} from "../../contract/index.js";
import { KvError } from "../../errors.js";
import {
  type Catalog,
  type Compiled,
  covers,
  type StoredIndex,
  type StoredSearchIndex,
} from "./catalog.js";
import { hasNoValue, indexKey, partsRange, userKeyOf, valueParts } from "./fields.js";

/** The most bytes an index entry's field parts may take. */
export const MAX_INDEX_VALUE_SIZE = 1024;
/** The most entries read of a unique value's range (values sharing an index key) when checking it. */
const UNIQUE_PROBE = 100_000;

const INDEX_VALUE: RawValue = encodeValue(null);

/** A write's index work, found before it commits. */
export interface Derived {
  readonly checks: readonly Check[];
  readonly rangeChecks: readonly RangeCheck[];
  readonly mutations: readonly Mutation[];
  readonly searchDocs: readonly SearchDoc[];
}

interface Touched {
  readonly key: Uint8Array;
  readonly namespaceLength: number;
  readonly catalog: Catalog;
  /** From `versionstampSuffix`: a new key, whose last part the commit adds. */
  readonly fresh: boolean;
  before: RawEntry | null;
  after: { value: RawValue; expiresAt: number | null } | null;
}

/** The catalog of the namespace a stored key lies in, and that namespace's prefix length. */
export type CatalogOf = (key: Uint8Array) => { catalog: Catalog; namespaceLength: number };

/**
 * Keys of `write` that some index or search index covers: `null` when there is none, which is
 * what almost every write finds.
 */
export function touchedKeys(write: AtomicWrite, catalogOf: CatalogOf): Touched[] | null {
  let touched: Map<string, Touched> | null = null;
  let fresh: Touched[] | null = null;
  for (const mutation of write.mutations) {
    const { catalog, namespaceLength } = catalogOf(mutation.key);
    if (catalog.indexes.length === 0 && catalog.search.length === 0) continue;
    const suffixed = mutation.type === "set" && mutation.versionstampSuffix === true;
    if (!coveredByAny(catalog, mutation.key, suffixed)) continue;
    if (suffixed) {
      fresh ??= [];
      // The same versionstamped key set twice in one commit is one key: the last value wins.
      const again = fresh.findIndex((t) => compareBytes(t.key, mutation.key) === 0);
      if (again >= 0) fresh.splice(again, 1);
      fresh.push({
        key: mutation.key,
        namespaceLength,
        catalog,
        fresh: true,
        before: null,
        after: { value: mutation.value, expiresAt: mutation.expiresAt },
      });
      continue;
    }
    touched ??= new Map();
    const id = keyId(mutation.key);
    if (!touched.has(id))
      touched.set(id, {
        key: mutation.key,
        namespaceLength,
        catalog,
        fresh: false,
        before: null,
        after: null,
      });
  }
  if (!touched && !fresh) return null;
  return [...(touched?.values() ?? []), ...(fresh ?? [])];
}

function coveredByAny(catalog: Catalog, key: Uint8Array, suffixed: boolean): boolean {
  // A versionstamped key gains a part, so a key equal to the prefix is covered once written.
  const probe = suffixed ? new Uint8Array([...key, 0]) : key;
  for (const index of catalog.indexes) if (covers(index, probe)) return true;
  for (const search of catalog.search) if (covers(search, probe)) return true;
  return false;
}

/** Point reads of the keys' states before the write. */
export function beforeRanges(touched: readonly Touched[]): ReadRange[] {
  return touched
    .filter((t) => !t.fresh)
    .map((t) => {
      const end = new Uint8Array(t.key.length + 1);
      end.set(t.key);
      return { start: t.key, end, limit: 1, reverse: false };
    });
}

/**
 * The index work of `write`, from the states `before` read of its touched keys. Reads the ranges
 * of unique values through `probe` (one snapshot). Throws `UNIQUE_VIOLATION` when the write would
 * give two entries one value of a unique index, and the error a mutation throws (a `sum` on a
 * string) as the driver would.
 */
export async function derive(
  write: AtomicWrite,
  touched: Touched[],
  before: readonly (RawEntry | null)[],
  probe: (ranges: ReadRange[]) => Promise<RawEntry[][]>,
  /** Index entries as they are (a backfill): write every one, changed or not. */
  backfill = false,
): Promise<Derived> {
  const byId = new Map<string, Touched>();
  let i = 0;
  for (const t of touched) {
    if (t.fresh) continue;
    t.before = before[i++] ?? null;
    t.after = t.before && { value: t.before.value, expiresAt: t.before.expiresAt };
    byId.set(keyId(t.key), t);
  }
  const context = { now: write.now, versionstamp: "", hash: () => "" };
  for (const mutation of write.mutations) {
    if (mutation.type === "set" && mutation.versionstampSuffix) continue;
    const t = byId.get(keyId(mutation.key));
    if (!t) continue;
    const stored: StoredEntry | null = t.after && {
      value: t.after.value,
      versionstamp: "",
      expiresAt: t.after.expiresAt,
      meta: PLACEHOLDER_META,
    };
    const { entry } = applyMutation(stored, mutation, context);
    t.after = entry && { value: entry.value, expiresAt: entry.expiresAt };
  }

  const checks: Check[] = [];
  const mutations: Mutation[] = [];
  const searchDocs: SearchDoc[] = [];
  const claims: Claim[] = [];
  const removed = new Set<string>();

  for (const t of touched) {
    if (!t.fresh) checks.push({ key: t.key, versionstamp: t.before?.versionstamp ?? null });
    const oldValue = t.before ? decodeValue(t.before.value) : undefined;
    const newValue = t.after ? decodeValue(t.after.value) : undefined;
    const userKey = t.key.subarray(t.namespaceLength);
    const probeKey = t.fresh ? new Uint8Array([...t.key, 0]) : t.key;
    for (const index of t.catalog.indexes) {
      if (!covers(index, probeKey)) continue;
      const oldKey = t.before
        ? indexKey(index.entries, valueParts(index.paths, oldValue), userKey)
        : null;
      let newKey: Uint8Array | null = null;
      if (t.after) {
        const parts = valueParts(index.paths, newValue);
        newKey = indexKey(index.entries, parts, userKey);
        assertIndexSize(index, newKey.length - userKey.length - index.entries.length);
        if (index.def.unique && !hasNoValue(parts))
          claims.push({
            index,
            range: partsRange(index.entries, parts),
            owner: userKey,
            values: fieldValues(index, newValue),
            t,
          });
      }
      const same = oldKey !== null && newKey !== null && compareBytes(oldKey, newKey) === 0;
      if (oldKey && !same) {
        mutations.push({ type: "delete", key: oldKey });
        removed.add(keyId(oldKey));
      }
      // An entry whose indexed values and expiry did not change keeps its index entry as it is.
      if (same && t.before?.expiresAt === t.after?.expiresAt && !backfill) continue;
      if (newKey && t.after)
        mutations.push({
          type: "set",
          key: newKey,
          value: INDEX_VALUE,
          expiresAt: t.after.expiresAt,
          ...(t.fresh && { versionstampSuffix: true }),
        });
    }
    for (const search of t.catalog.search) {
      if (!covers(search, probeKey)) continue;
      if (!t.before && !t.after) continue;
      if (t.fresh)
        throw new KvError(
          "UNSUPPORTED",
          `search index ${JSON.stringify(search.def.name)} covers this key: a versionstamped key cannot be written under a search index's prefix`,
        );
      searchDocs.push({
        index: search.def.id,
        key: t.key,
        fields: t.after ? documentOf(search, newValue) : null,
      });
    }
  }

  const claimed = await checkClaims(claims, removed, probe);
  return {
    checks: [...checks, ...claimed.checks],
    rangeChecks: claimed.rangeChecks,
    mutations,
    searchDocs,
  };
}

const PLACEHOLDER_META = {
  version: 0,
  createdAt: 0,
  updatedAt: 0,
  tags: [],
  modifiedBy: null,
  comment: null,
  dataHash: "",
};

function assertIndexSize(index: Compiled<StoredIndex>, size: number): void {
  if (size > MAX_INDEX_VALUE_SIZE)
    throw new KvError(
      "KEY_TOO_LARGE",
      `the values of fields ${index.def.fields.join(", ")} take ${size} bytes in index ${JSON.stringify(index.def.name)}; the limit is ${MAX_INDEX_VALUE_SIZE}`,
    );
}

/**
 * Fails with `UNIQUE_VIOLATION` when a unique value a write claims is held by another entry that
 * the write does not move away, or claimed twice by the write; otherwise the range checks that
 * keep it so until the commit.
 */
async function checkClaims(
  claims: readonly Claim[],
  removed: ReadonlySet<string>,
  probe: (ranges: ReadRange[]) => Promise<RawEntry[][]>,
): Promise<{ rangeChecks: RangeCheck[]; checks: Check[] }> {
  if (claims.length === 0) return { rangeChecks: [], checks: [] };
  // Index parts round (a bigint past 2^53, a string with a lone surrogate): equal parts are only
  // candidates, and the values themselves decide.
  const seen = new Map<string, Claim[]>();
  for (const claim of claims) {
    const id = keyId(claim.range.start);
    const others = seen.get(id) ?? [];
    for (const other of others)
      if (compareBytes(other.owner, claim.owner) !== 0 && sameValues(other.values, claim.values))
        throw violation(claim.index);
    seen.set(id, [...others, claim]);
  }
  const found = await probe(
    claims.map((c) => ({ ...c.range, limit: UNIQUE_PROBE, reverse: false })),
  );
  const holders: { claim: Claim; key: Uint8Array }[] = [];
  const holderChecks: Check[] = [];
  const rangeChecks = claims.map((claim, i) => {
    const entries = found[i] ?? [];
    for (const entry of entries) {
      if (removed.has(keyId(entry.key))) continue;
      const holder = userKeyOf(claim.index.entries.length, claim.index.paths.length, entry.key);
      if (compareBytes(holder, claim.owner) !== 0)
        holders.push({
          claim,
          key: join(claim.t.key.subarray(0, claim.t.namespaceLength), holder),
        });
    }
    return { ...claim.range, count: entries.length };
  });
  if (holders.length > 0) {
    const current = await probe(
      holders.map(({ key }) => ({ start: key, end: join(key, ZERO), limit: 1, reverse: false })),
    );
    holders.forEach(({ claim, key }, i) => {
      const entry = current[i]?.[0];
      if (entry && sameValues(fieldValues(claim.index, decodeValue(entry.value)), claim.values))
        throw violation(claim.index);
      // A holder's value may change without moving its index entry: it must not change meanwhile.
      holderChecks.push({ key, versionstamp: entry?.versionstamp ?? null });
    });
  }
  return { rangeChecks, checks: holderChecks };
}

interface Claim {
  readonly index: Compiled<StoredIndex>;
  readonly range: { start: Uint8Array; end: Uint8Array };
  readonly owner: Uint8Array;
  readonly values: readonly unknown[];
  readonly t: Touched;
}

const ZERO = new Uint8Array([0]);

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function fieldValues(index: Compiled<StoredIndex>, value: unknown): unknown[] {
  return index.paths.map((path) => {
    const found = fieldAt(value, path);
    return found.found ? found.value : undefined;
  });
}

/** Whether two entries hold the same values for a unique index (as the where language's `$eq`). */
function sameValues(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.every((value, i) =>
    typeof value === "string" || typeof b[i] === "string"
      ? value === b[i]
      : compareScalars(value, b[i]) === 0,
  );
}

const violation = (index: Compiled<StoredIndex>) =>
  new KvError(
    "UNIQUE_VIOLATION",
    `another entry already has this value of ${index.def.fields.join(", ")} in unique index ${JSON.stringify(index.def.name)}`,
    { details: { index: index.def.name } },
  );

/** A value's text in a search index's fields: strings as they are, numbers and words of arrays joined. */
export function documentOf(search: Compiled<StoredSearchIndex>, value: unknown): string[] | null {
  let any = false;
  const fields = search.paths.map((path) => {
    const found = fieldAt(value, path);
    const text = found.found ? textOf(found.value, 0) : "";
    if (text !== "") any = true;
    return text;
  });
  return any ? fields : null;
}

function textOf(value: unknown, depth: number): string {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "bigint":
    case "boolean":
      return String(value);
    default:
      if (Array.isArray(value) && depth === 0)
        return value
          .map((item) => textOf(item, 1))
          .filter((text) => text !== "")
          .join("\n");
      return "";
  }
}
