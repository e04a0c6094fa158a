/**
 * The catalog of a namespace's indexes and search indexes: one entry, `["catalog"]` in the
 * reserved namespace `$index:<namespace>`, whose versionstamp is the catalog's version. Index
 * entries live beside it (`["e", id, …fields, …key]`), so dropping the namespace's reserved
 * namespace drops them all.
 *
 * Every commit that writes a namespace checks the catalog's versionstamp it planned with, so a
 * writer that has not yet seen an index another process created fails its check, reloads the
 * catalog and maintains the index: an index is never stale.
 */
import { encodeKey } from "../../codec/key.js";
import type { IndexInfo, Path, SearchIndexInfo, SearchTokenizer } from "../../contract/index.js";
import { bareMessage, describe, fail } from "../../errors.js";
import { parsePath } from "../where/compile.js";

/** What is stored of an index: what users see of it, and the number its entries are filed under. */
export type StoredIndex = IndexInfo & { readonly id: number };

export type StoredSearchIndex = SearchIndexInfo & { readonly id: number };

export interface StoredCatalog {
  readonly indexes: readonly StoredIndex[];
  readonly search: readonly StoredSearchIndex[];
}

/** A definition with what the write path needs precomputed. */
export interface Compiled<T> {
  readonly def: T;
  readonly paths: readonly Path[];
  /** The stored bytes every covered key starts with (namespace, then the index's prefix). */
  readonly covers: Uint8Array;
  /** The stored prefix of this index's entries (`$index:<ns>`, `"e"`, id). */
  readonly entries: Uint8Array;
}

/** A namespace's catalog as loaded: its version and its compiled definitions. */
export interface Catalog {
  readonly namespace: string;
  /** The catalog entry's versionstamp; `null` when the namespace never had an index. */
  readonly versionstamp: string | null;
  readonly stored: StoredCatalog;
  readonly indexes: readonly Compiled<StoredIndex>[];
  readonly search: readonly Compiled<StoredSearchIndex>[];
}

export const EMPTY_CATALOG: StoredCatalog = { indexes: [], search: [] };

/** The reserved namespace holding `namespace`'s catalog and index entries. */
export const indexNamespace = (namespace: string) => `$index:${namespace}`;

/** The stored key of `namespace`'s catalog. */
export const catalogKey = (namespace: string) => encodeKey([indexNamespace(namespace), "catalog"]);

/** The stored key of the database-wide counter that numbers indexes. */
export const COUNTER_KEY = encodeKey(["$indexes", "next-id"]);

export function compileCatalog(
  namespace: string,
  versionstamp: string | null,
  stored: StoredCatalog,
): Catalog {
  const nsPrefix = encodeKey([namespace]);
  const compile = <T extends StoredIndex | StoredSearchIndex>(def: T): Compiled<T> => ({
    def,
    paths: def.fields.map((field) => parsePath(field, `field ${JSON.stringify(field)}`)),
    covers: encodeKey(def.prefix, nsPrefix),
    entries: entriesPrefix(namespace, def.id),
  });
  return {
    namespace,
    versionstamp,
    stored,
    indexes: stored.indexes.map(compile),
    search: stored.search.map(compile),
  };
}

/** The stored prefix of index `id`'s entries. */
export const entriesPrefix = (namespace: string, id: number) =>
  encodeKey([indexNamespace(namespace), "e", id]);

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
/** Indexes per namespace, of each kind. */
export const MAX_INDEXES = 32;
export const MAX_INDEX_FIELDS = 8;
export const MAX_SEARCH_FIELDS = 16;
export const TOKENIZERS: readonly SearchTokenizer[] = ["word", "stemmed", "trigram"];
export const LANGUAGES: readonly string[] = ["english"];

export function assertIndexName(name: unknown, what = "an index"): asserts name is string {
  if (typeof name !== "string" || !NAME.test(name))
    fail(
      "INVALID_ARGUMENT",
      `${what} name is 1–64 letters, digits, '_', '.' or '-', starting with a letter, digit or '_', got ${describe(name)}`,
    );
}

/** Checks an index's fields: 1 to `max` distinct field paths of the where language. */
export function assertFields(fields: unknown, max: number): asserts fields is string[] {
  if (!Array.isArray(fields) || fields.length === 0 || fields.length > max)
    fail(
      "INVALID_ARGUMENT",
      `fields is an array of 1 to ${max} field paths, got ${describe(fields)}`,
    );
  const seen = new Set<string>();
  for (const field of fields) {
    if (typeof field !== "string")
      fail("INVALID_ARGUMENT", `a field is a path such as "address.city", got ${describe(field)}`);
    try {
      parsePath(field, `field ${JSON.stringify(field)}`);
    } catch (error) {
      fail("INVALID_ARGUMENT", bareMessage(error as Error));
    }
    if (seen.has(field)) fail("INVALID_ARGUMENT", `field ${JSON.stringify(field)} is listed twice`);
    seen.add(field);
  }
}

/** Whether `key` (stored) is covered: it starts with the index's prefix and is longer. */
export function covers(compiled: Compiled<unknown>, key: Uint8Array): boolean {
  const prefix = compiled.covers;
  if (key.length <= prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}
