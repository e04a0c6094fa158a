/**
 * Indexes across a network: a driver that is a client of another Cellar (the remote driver) does
 * not maintain indexes or search indexes itself — its server does, in its own commits — so the
 * core hands every index call to the driver's {@link KvIndexHost}, which asks the server.
 */
import type { KvKey } from "../codec/key.js";
import type { Filter } from "./filter.js";
import type { SearchHit, SearchTokenizer } from "./search.js";
import type { RawEntry } from "./storage.js";

export interface IndexInfo {
  readonly name: string;
  readonly prefix: KvKey;
  readonly fields: readonly string[];
  readonly unique: boolean;
  /** `building` while the backfill runs (writes keep it current; lists do not use it yet). */
  readonly state: "building" | "ready";
  readonly createdAt: number;
}

export interface SearchIndexInfo {
  readonly name: string;
  readonly prefix: KvKey;
  readonly fields: readonly string[];
  readonly tokenizer: SearchTokenizer;
  readonly language: string;
  readonly state: "building" | "ready";
  readonly createdAt: number;
}

/** How a list with a where filter is answered (`kv.explain()`). */
export interface IndexPlanInfo {
  /** The index it reads, or `null` when it scans the range. */
  readonly index: string | null;
  /** Whether the index yields entries in key order (equality on every field), page by page. */
  readonly ordered: boolean;
  /** Index ranges read (one per combination of `$in` values). */
  readonly ranges: number;
}

/** A secondary index's definition, as a server takes it. */
export interface IndexDefinition {
  readonly prefix: KvKey;
  readonly fields: readonly string[];
  readonly unique?: boolean;
}

export interface SearchIndexDefinition {
  readonly prefix: KvKey;
  readonly fields: readonly string[];
  readonly tokenizer?: SearchTokenizer;
  readonly language?: string;
}

export interface SearchOptions {
  readonly where: Filter | undefined;
  readonly limit: number;
  readonly cursor: string | undefined;
  readonly highlight: boolean | { readonly start: string; readonly end: string } | undefined;
  readonly metadata: boolean;
}

/** One page of search hits; `fields` names the highlights, in order. */
export interface SearchPage {
  readonly hits: readonly SearchHit[];
  readonly fields: readonly string[];
  readonly cursor: string | null;
}

/** An index walk's selector: field values in the index's field order. */
export interface IndexSelector {
  readonly index: string;
  readonly prefix?: readonly unknown[];
  readonly start?: readonly unknown[];
  readonly end?: readonly unknown[];
}

/** The byte range of an index walk (index keys), and the bytes its cursors leave out. */
export interface IndexWalkBounds {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly prefix: Uint8Array | null;
  readonly common: Uint8Array;
}

/** Index calls on a namespace of the server (the Kv methods of the same names). */
export interface KvIndexHost {
  createIndex(
    namespace: string,
    name: string,
    definition: IndexDefinition,
  ): Promise<{ info: IndexInfo; indexed: number }>;
  dropIndex(namespace: string, name: string): Promise<void>;
  listIndexes(namespace: string): Promise<IndexInfo[]>;
  createSearchIndex(
    namespace: string,
    name: string,
    definition: SearchIndexDefinition,
  ): Promise<{ info: SearchIndexInfo; indexed: number }>;
  dropSearchIndex(namespace: string, name: string): Promise<void>;
  listSearchIndexes(namespace: string): Promise<SearchIndexInfo[]>;
  search(
    namespace: string,
    name: string,
    query: string,
    options: SearchOptions,
  ): Promise<SearchPage>;
  /** The plan of a read of `range` (stored keys of `namespace`) with `where`. */
  explain(
    namespace: string,
    range: { start: Uint8Array; end: Uint8Array },
    where: Filter,
  ): Promise<IndexPlanInfo>;
  walkBounds(namespace: string, selector: IndexSelector): Promise<IndexWalkBounds>;
  /** Entries of an index walk in `range` (index keys inside the walk's bounds), with their index keys. */
  walk(
    namespace: string,
    selector: IndexSelector,
    page: {
      range: { start: Uint8Array; end: Uint8Array };
      limit: number;
      reverse: boolean;
      where: Filter | undefined;
      metadata: boolean;
    },
  ): Promise<{ entry: RawEntry; key: Uint8Array }[]>;
}
