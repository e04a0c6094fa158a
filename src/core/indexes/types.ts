/** The public shapes of secondary indexes and search indexes. */
export type {
  IndexInfo as KvIndexInfo,
  IndexPlanInfo as KvExplain,
  SearchIndexInfo as KvSearchIndexInfo,
} from "../../contract/index.js";

import type { KvKey } from "../../codec/key.js";
import type { SearchTokenizer } from "../../contract/index.js";
import type { KvEntry } from "../types.js";
import type { KvWhere } from "../where/compile.js";

/** How far an index's backfill of existing entries has got. */
export interface KvIndexProgress {
  readonly name: string;
  /** Entries indexed so far. */
  readonly indexed: number;
  /** Entries under the prefix when the backfill started. */
  readonly total: number;
}

export interface KvIndexOptions {
  /** The entries indexed: every key strictly under this prefix (`[]`: the whole namespace). */
  readonly prefix: KvKey;
  /** Value field paths (`"email"`, `"address.city"`, `"tags.0"`), 1 to 8, in sort order. */
  readonly fields: readonly string[];
  /** Refuse a write that gives two entries the same values (entries missing a field or `null` are exempt). */
  readonly unique?: boolean;
  /** Called after each batch of the backfill. */
  readonly onProgress?: (progress: KvIndexProgress) => void;
}

export interface KvSearchIndexOptions {
  readonly prefix: KvKey;
  /** Value field paths holding text (strings; numbers and arrays of strings are read as text), 1 to 16. */
  readonly fields: readonly string[];
  /** `word` (default): words, case and diacritics folded; `stemmed`: words reduced to their stem; `trigram`: substrings and typos. */
  readonly tokenizer?: SearchTokenizer;
  /** The stemmer's language (default and only: `"english"`). */
  readonly language?: string;
  readonly onProgress?: (progress: KvIndexProgress) => void;
}

export interface KvSearchOptions {
  /** Only entries whose value matches this filter (the where language). */
  readonly where?: KvWhere;
  /** Hits per page (default 20, at most 1000). */
  readonly limit?: number;
  /** Where the previous page ended (its `cursor`). */
  readonly cursor?: string;
  /** Snippets of each field around the matches: `true` marks them with `<mark>…</mark>`. */
  readonly highlight?: boolean | { readonly start: string; readonly end: string };
  readonly metadata?: boolean;
}

export type KvSearchHit<T = unknown> = KvEntry<T> & {
  /** Relevance, higher is better; comparable within one result list, not across engines. */
  readonly score: number;
  /** With `highlight`: per field, a snippet with the matches marked, or `null` where nothing matched. */
  readonly highlights?: Readonly<Record<string, string | null>>;
};

export interface KvSearchResult<T = unknown> {
  readonly hits: readonly KvSearchHit<T>[];
  /** The next page's cursor, or `null` after the last page. */
  readonly cursor: string | null;
}

/**
 * `kv.list()` over an index: entries in the order of its fields, then of their keys. `prefix`
 * holds field values every listed entry starts with, in the index's field order; `start` the
 * first values listed (inclusive), `end` the values to stop before (exclusive).
 */
export type { IndexSelector as KvIndexSelector } from "../../contract/index.js";
