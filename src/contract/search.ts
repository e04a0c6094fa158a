/**
 * The full-text search contract: what a driver with a search engine (SQLite FTS5, PostgreSQL
 * `tsvector`, MiniSearch in memory) does for Cellar.
 *
 * The core decides everything about documents: which keys a search index covers (its prefix, in
 * one namespace), which value fields are its text, and when they change. It hands the driver a
 * {@link SearchDoc} for every key a write touches under a search index's prefix, inside the
 * {@link AtomicWrite} that changes the entry, and the driver applies it in the same storage
 * transaction (only when every check passes). A search index is identified by a number the core
 * assigns; a driver never sees a user's names or field paths.
 *
 * A query reaches the driver parsed ({@link SearchQuery}); the driver maps it to its engine's
 * syntax by construction (quoting every term, binding every value), so no user text ever becomes
 * raw FTS5 or tsquery syntax.
 */
import type { Filter } from "./filter.js";
import type { KeyRange, RawEntry } from "./storage.js";

/** How text is split into terms. */
export type SearchTokenizer = "word" | "stemmed" | "trigram";

/**
 * The parsed query language (see `core/search/query.ts`):
 * - `term`: one word; with `prefix`, any word starting with it (`data*`).
 * - `phrase`: these words, adjacent and in order (`"key value"`).
 * - `and`: every query; at least one is not a `not`.
 * - `or`: any query.
 * - `not`: only as a member of an `and`: excludes what it matches (`-draft`).
 *
 * Terms and phrases hold the user's text as typed (never empty); the engine tokenizes it with
 * the index's tokenizer, so `"e-mail"` is the phrase `e mail` to a word tokenizer.
 */
export type SearchQuery =
  | { readonly op: "term"; readonly text: string; readonly prefix?: true }
  | { readonly op: "phrase"; readonly text: string }
  | { readonly op: "and" | "or"; readonly queries: readonly SearchQuery[] }
  | { readonly op: "not"; readonly query: SearchQuery };

/** A search index as a driver stores it. */
export interface SearchIndexSpec {
  /** Assigned by the core, unique in the database; names the engine's table (`search_<id>`). */
  readonly id: number;
  /** Number of text fields; documents carry exactly this many strings. */
  readonly fields: number;
  readonly tokenizer: SearchTokenizer;
  /** The stemmer's language for `stemmed`: `"english"` (the one every driver has). */
  readonly language: string;
}

/**
 * A key's document in one search index after a write: its text fields (in the index's field
 * order, `""` for a field the value lacks), or `null` when the key has no document any more
 * (deleted, or its value no longer under the index). Applied after the write's mutations.
 */
export interface SearchDoc {
  readonly index: number;
  readonly key: Uint8Array;
  readonly fields: readonly string[] | null;
}

export interface SearchRequest {
  readonly index: number;
  readonly query: SearchQuery;
  /** Only documents whose key lies in this range (the index's prefix, or narrower). */
  readonly range: KeyRange;
  /** Only documents whose live entry's value matches (as `ReadRange.where`). */
  readonly where?: Filter;
  /** Best-ranked hits after skipping `offset`, at most `limit`. */
  readonly limit: number;
  readonly offset: number;
  /** Snippets of each field around its matches, with matched terms wrapped in these markers. */
  readonly highlight?: { readonly start: string; readonly end: string };
  readonly now: number;
  readonly metadata?: boolean;
}

export interface SearchHit {
  /** The document's live entry (documents of absent or expired entries are never hits). */
  readonly entry: RawEntry;
  /** Relevance, higher is better (BM25-class: term frequency, rarity, field length). */
  readonly score: number;
  /** With `highlight`: one snippet per field, `null` for a field where nothing matched. */
  readonly highlights?: readonly (string | null)[];
}

/** Full-text search. Optional: a driver without it refuses search indexes with `UNSUPPORTED`. */
export interface KvSearchStore {
  /** Prepares storage for an index (idempotent: the same spec again is no error). */
  createSearchIndex(spec: SearchIndexSpec): Promise<void>;
  /** Removes an index's storage and every document in it (idempotent). */
  dropSearchIndex(id: number): Promise<void>;
  /**
   * Hits ordered by score, best first, ties by key ascending; `INVALID_QUERY` when the engine
   * cannot run the query (a trigram term shorter than 3 characters, say), naming the term.
   */
  search(request: SearchRequest): Promise<SearchHit[]>;
}

/*
 * Documents follow their entries: a driver with search removes a key's documents when the key is
 * swept (`deleteExpired`) or purged (`purge`), in the same transaction. Until then a document
 * whose entry is absent or expired is never a hit, so a search never returns a stale entry.
 */
