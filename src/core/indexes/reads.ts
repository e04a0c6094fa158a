/**
 * Reads through indexes: a where filter's list answered from an index (the planner's plan run
 * page by page, or its candidates gathered and sorted), counts, `explain`, and index walks.
 * Every candidate is checked against the whole filter, and every index read is checked against
 * the catalog it was planned with (`STALE` re-plans), so an index never changes what a list
 * returns.
 */
import { compareBytes, concatBytes, encodeKey, startsWith } from "../../codec/key.js";
import { decodeValue } from "../../codec/value.js";
import { matchesFilter } from "../../contract/filter.js";
import type { Filter, KeyRange, KvDriver, RawEntry, ReadRange } from "../../contract/index.js";
import { describe, fail, KvError } from "../../errors.js";
import { rememberDecoded } from "../decoded.js";
import { assertIndexName, type Catalog, catalogKey } from "./catalog.js";
import { scalarParts, userKeyOf } from "./fields.js";
import { type IndexPlan, planRead } from "./plan.js";
import type { IndexWalk } from "./service.js";
import type { KvExplain, KvIndexSelector } from "./types.js";

/** Candidates an unordered index read gathers before it gives way to a scan. */
const GATHER_LIMIT = 10_000;
/** Entries fetched per read while answering from an index. */
const FETCH_BATCH = 256;

/** What the reads need of the catalog cache (see `engine.ts`). */
export interface CatalogSource {
  /** A namespace's catalog, cached or loaded. */
  catalog(namespace: string): Promise<Catalog>;
  /** A namespace's catalog, loaded now. */
  load(namespace: string): Promise<Catalog>;
  /** The namespace a stored key lies in, and its prefix's length. */
  namespace(key: Uint8Array): { name: string; length: number };
}

export const point = (key: Uint8Array): ReadRange => ({
  start: key,
  end: concatBytes(key, 0x00),
  limit: 1,
  reverse: false,
});

export class IndexReads {
  readonly #driver: KvDriver;
  readonly #catalogs: CatalogSource;
  readonly #now: () => number;

  constructor(driver: KvDriver, catalogs: CatalogSource, now: () => number) {
    this.#driver = driver;
    this.#catalogs = catalogs;
    this.#now = now;
  }

  /**
   * Answers a read with a where filter from an index when one applies: the same entries a scan
   * returns, in key order. `null` when no index applies (the caller scans).
   */
  async read(
    range: ReadRange & { readonly where: Filter },
    options: { now: number; metadata: boolean },
  ): Promise<RawEntry[] | null> {
    const { name, length } = this.#catalogs.namespace(range.start);
    if (name.startsWith("$")) return null;
    for (let attempt = 0; attempt < 3; attempt++) {
      const catalog = await this.#catalogs.catalog(name);
      if (catalog.indexes.length === 0) return null;
      const plan = planRead(catalog, range, range.where);
      if (!plan) return null;
      const result = plan.ordered
        ? await this.#readOrdered(catalog, plan, range, length, options)
        : await this.#readGathered(catalog, plan, range, length, options);
      if (result !== STALE) return result;
      await this.#catalogs.load(name);
    }
    return null;
  }

  /**
   * Counts the entries of a range that match its where filter from an index, when one applies
   * and at most {@link GATHER_LIMIT} match; `null` otherwise (the caller counts in the driver).
   */
  async count(range: KeyRange & { readonly where: Filter }, now: number): Promise<number | null> {
    const found = await this.read(
      { ...range, limit: GATHER_LIMIT + 1, reverse: false },
      { now, metadata: false },
    );
    return found && found.length <= GATHER_LIMIT ? found.length : null;
  }

  /** Which index a read with a where filter would use (see `plan.ts`). */
  async explain(range: ReadRange & { readonly where: Filter }): Promise<KvExplain> {
    const { name } = this.#catalogs.namespace(range.start);
    if (name.startsWith("$")) return NO_PLAN;
    const plan = planRead(await this.#catalogs.load(name), range, range.where);
    return plan
      ? { index: plan.index.def.name, ordered: plan.ordered, ranges: plan.ranges.length }
      : NO_PLAN;
  }

  /** Reads index ranges with the catalog's entry in the same snapshot; `STALE` if it changed. */
  async #readIndex(
    catalog: Catalog,
    ranges: readonly ReadRange[],
    now: number,
  ): Promise<RawEntry[][] | typeof STALE> {
    const read = await this.#driver.snapshotRead(
      [...ranges, point(catalogKey(catalog.namespace))],
      {
        now,
      },
    );
    const current = read.pop()?.[0]?.versionstamp ?? null;
    return current === catalog.versionstamp ? read : STALE;
  }

  /** Equality on every field: the index lists the entries in key order, page by page. */
  async #readOrdered(
    catalog: Catalog,
    plan: IndexPlan,
    range: ReadRange & { readonly where: Filter },
    namespaceLength: number,
    options: { now: number; metadata: boolean },
  ): Promise<RawEntry[] | typeof STALE> {
    const fields = plan.ranges[0];
    if (!fields) return [];
    const nsPrefix = range.start.subarray(0, namespaceLength);
    let start = concatBytes(fields.start, range.start.subarray(namespaceLength));
    let end = concatBytes(fields.start, range.end.subarray(namespaceLength));
    const out: RawEntry[] = [];
    const batch = Math.min(Math.max(range.limit, 16), 1000);
    for (;;) {
      const read = await this.#readIndex(
        catalog,
        [{ start, end, limit: batch, reverse: range.reverse }],
        options.now,
      );
      if (read === STALE) return STALE;
      const found = read[0] ?? [];
      const keys = found.map((e) => join(nsPrefix, e.key.subarray(fields.start.length)));
      for (const entry of await this.#fetch(keys, range.where, options)) {
        out.push(entry);
        if (out.length === range.limit) return out;
      }
      const last = found.at(-1);
      if (!last || found.length < batch) return out;
      if (range.reverse) end = last.key;
      else start = concatBytes(last.key, 0x00);
    }
  }

  /** Any other plan: gather the candidates' keys, sort them, fetch until the page is full. */
  async #readGathered(
    catalog: Catalog,
    plan: IndexPlan,
    range: ReadRange & { readonly where: Filter },
    namespaceLength: number,
    options: { now: number; metadata: boolean },
  ): Promise<RawEntry[] | null | typeof STALE> {
    const read = await this.#readIndex(
      catalog,
      plan.ranges.map((r) => ({ ...r, limit: GATHER_LIMIT + 1, reverse: false })),
      options.now,
    );
    if (read === STALE) return STALE;
    const nsPrefix = range.start.subarray(0, namespaceLength);
    const entriesLength = plan.index.entries.length;
    const fieldCount = plan.index.paths.length;
    const keys: Uint8Array[] = [];
    let gathered = 0;
    for (const found of read) {
      // Past the limit the index was not read to its end: scan instead, whatever the range keeps.
      gathered += found.length;
      if (gathered > GATHER_LIMIT) return null;
      for (const entry of found) {
        const key = join(nsPrefix, userKeyOf(entriesLength, fieldCount, entry.key));
        if (compareBytes(key, range.start) >= 0 && compareBytes(key, range.end) < 0) keys.push(key);
      }
    }
    keys.sort(range.reverse ? (a, b) => compareBytes(b, a) : compareBytes);
    const out: RawEntry[] = [];
    for (let i = 0; i < keys.length && out.length < range.limit; i += FETCH_BATCH) {
      for (const entry of await this.#fetch(keys.slice(i, i + FETCH_BATCH), range.where, options)) {
        out.push(entry);
        if (out.length === range.limit) break;
      }
    }
    return out;
  }

  /** The live entries of `keys` whose values match `where`, in the order of `keys`. */
  async #fetch(
    keys: readonly Uint8Array[],
    where: Filter | undefined,
    options: { now: number; metadata: boolean },
  ): Promise<RawEntry[]> {
    if (keys.length === 0) return [];
    const read = await this.#driver.snapshotRead(keys.map(point), options);
    const out: RawEntry[] = [];
    for (const found of read) {
      const entry = found[0];
      if (!entry) continue;
      if (where === undefined) {
        out.push(entry);
        continue;
      }
      const value = decodeValue(entry.value);
      if (matchesFilter(where, value)) {
        rememberDecoded(entry, value);
        out.push(entry);
      }
    }
    return out;
  }

  /**
   * The byte range of an index selector, and a reader of its entries: index keys with the
   * entries they point at, in index order.
   */
  async walk(namespace: string, selector: KvIndexSelector): Promise<IndexWalk> {
    assertIndexName(selector.index);
    let catalog = await this.#catalogs.catalog(namespace);
    // Another process may have made it since this one cached the catalog: look again once.
    if (!catalog.indexes.some((i) => i.def.name === selector.index))
      catalog = await this.#catalogs.load(namespace);
    const index = catalog.indexes.find((i) => i.def.name === selector.index);
    if (!index) throw notFound("index", selector.index, namespace);
    assertReady(index.def);
    const bound = (values: unknown, what: string): Uint8Array => {
      if (!Array.isArray(values) || values.length > index.paths.length)
        fail(
          "INVALID_SELECTOR",
          `an index selector's ${what} is an array of up to ${index.paths.length} field values, got ${describe(values)}`,
        );
      return encodeKey(
        values.flatMap((value: unknown) => scalarParts(value)),
        index.entries,
      );
    };
    let start: Uint8Array;
    let end: Uint8Array;
    let prefix: Uint8Array | null = null;
    if (selector.prefix !== undefined) {
      const p = bound(selector.prefix, "prefix");
      prefix = p;
      // As in a key selector, bounds lie inside the prefix: their values begin with its values.
      const inside = (values: unknown, what: string) => {
        const key = bound(values, what);
        if (!startsWith(key, p))
          fail(
            "INVALID_SELECTOR",
            `an index selector's ${what} must begin with the values of its prefix`,
          );
        return key;
      };
      start = selector.start !== undefined ? inside(selector.start, "start") : p;
      end = selector.end !== undefined ? inside(selector.end, "end") : concatBytes(p, 0xff);
    } else {
      start = selector.start !== undefined ? bound(selector.start, "start") : index.entries;
      end =
        selector.end !== undefined ? bound(selector.end, "end") : concatBytes(index.entries, 0xff);
    }
    if (compareBytes(start, end) > 0)
      fail("INVALID_SELECTOR", "the index selector's start is after its end");
    const nsPrefix = encodeKey([namespace]);
    const pull = async (
      range: { start: Uint8Array; end: Uint8Array },
      limit: number,
      reverse: boolean,
      where: Filter | undefined,
      metadata: boolean,
    ) => {
      const now = this.#now();
      const out: { entry: RawEntry; key: Uint8Array }[] = [];
      let { start: from, end: to } = range;
      for (;;) {
        const read = await this.#readIndex(
          catalog,
          [{ start: from, end: to, limit, reverse }],
          now,
        );
        if (read === STALE) {
          // The catalog changed (another index made or dropped): go on while this one is there.
          catalog = await this.#catalogs.load(namespace);
          if (!catalog.indexes.some((i) => i.def.id === index.def.id))
            throw new KvError(
              "NOT_FOUND",
              `index ${JSON.stringify(selector.index)} was dropped during the list`,
            );
          continue;
        }
        const found = read[0] ?? [];
        const keys = found.map((e) =>
          join(nsPrefix, userKeyOf(index.entries.length, index.paths.length, e.key)),
        );
        const entries = await this.#driver.snapshotRead(keys.map(point), { now, metadata });
        for (let i = 0; i < found.length; i++) {
          const entry = entries[i]?.[0];
          if (!entry) continue;
          if (where !== undefined) {
            const value = decodeValue(entry.value);
            if (!matchesFilter(where, value)) continue;
            rememberDecoded(entry, value);
          }
          out.push({ entry, key: found[i]!.key });
          if (out.length === limit) return out;
        }
        const last = found.at(-1);
        if (!last || found.length < limit) return out;
        if (reverse) to = last.key;
        else from = concatBytes(last.key, 0x00);
      }
    };
    return { start, end, prefix, common: prefix ?? index.entries, pull };
  }
}

const STALE = Symbol("stale");
const NO_PLAN: KvExplain = { index: null, ordered: false, ranges: 0 };

/** Refuses a walk or a search of an index whose backfill has not finished (it would miss entries). */
export function assertReady(def: { name: string; state: "building" | "ready" }): void {
  if (def.state !== "ready")
    throw new KvError(
      "UNAVAILABLE",
      `index ${JSON.stringify(def.name)} is still being built; it answers once its backfill is done`,
    );
}

function join(prefix: Uint8Array, rest: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + rest.length);
  out.set(prefix);
  out.set(rest, prefix.length);
  return out;
}

export const notFound = (what: string, name: string, namespace: string) =>
  new KvError(
    "NOT_FOUND",
    `no ${what} ${JSON.stringify(name)} in namespace ${JSON.stringify(namespace)}`,
  );
