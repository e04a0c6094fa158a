/**
 * Full-text search on SQLite with FTS5.
 *
 * Each index is an FTS5 table `cellar_search_<id>` with one column per field (`c0`…), and a
 * table `cellar_search_<id>_keys` pairing each document's rowid with its entry's key. The FTS5
 * table keeps its own copy of the text (no external content): `snippet()` and `highlight()`
 * read it, and a document can be replaced or deleted by rowid without handing FTS5 the old text
 * back, which an external-content table needs and gets wrong silently when the copy drifts.
 * Names come from the numeric id only; the tokenizer from a fixed list. The catalog of indexes
 * is the table `cellar_search` (schema 3).
 *
 * Queries are translated from the parsed query by construction: every term and phrase is an FTS5
 * string (double-quoted, quotes doubled), `*` comes only from a prefix term, AND/OR/NOT only from
 * the query's structure; the expression is bound to `MATCH`, never written into SQL. A trigram
 * index looks a term up by any of its trigrams (`"cel" OR "ell" OR …`), so bm25 ranks documents
 * by how many they share: substrings and words with a typo are found; an excluded term or a
 * phrase must occur as it is.
 *
 * A search joins the live entries (`expires_at` after `now`) and the key range, and filters with
 * the where clause the driver's reads use (`SqliteWhere`), so `LIMIT` counts hits. Scores are
 * `-bm25()`: higher is better.
 */
import type Database from "better-sqlite3";
import type {
  SearchDoc,
  SearchHit,
  SearchIndexSpec,
  SearchQuery,
  SearchRequest,
  SearchTokenizer,
} from "../../contract/index.js";
import { KvError } from "../../errors.js";
import {
  alreadyExists,
  assertDocFields,
  assertQueryShape,
  assertSearchSpec,
  queryTrigrams,
  sameSpec,
  searchableText,
  unknownIndex,
} from "../shared/search-text.js";
import {
  BASE_COLUMNS,
  type Hash,
  LIVE,
  META_COLUMNS,
  META_WIDTH,
  type Row,
  toEntry,
} from "./schema.js";
import type { SqliteWhere } from "./where.js";

/** FTS5 tokenizer options by tokenizer: the only text of a `tokenize=` SQLite sees. */
const TOKENIZE: Record<SearchTokenizer, string> = {
  word: "unicode61 remove_diacritics 2",
  stemmed: "porter unicode61 remove_diacritics 2",
  trigram: "trigram remove_diacritics 1",
};

/** Tokens a snippet shows: words, or characters of a trigram index (at most FTS5's 64). */
const SNIPPET_TOKENS: Record<SearchTokenizer, number> = { word: 16, stemmed: 16, trigram: 64 };

interface IndexStatements {
  readonly docOf: Database.Statement;
  readonly addKey: Database.Statement;
  readonly insert: Database.Statement;
  readonly update: Database.Statement;
  readonly remove: Database.Statement;
  readonly removeKey: Database.Statement;
  readonly removeRange: Database.Statement;
  readonly removeKeyRange: Database.Statement;
}

/** Search indexes on one connection. Writes run inside the caller's write transaction. */
export class SqliteSearch {
  readonly #db: Database.Database;
  readonly #where: SqliteWhere;
  readonly #hash: Hash;
  readonly #spec: Database.Statement;
  readonly #ids: Database.Statement;
  readonly #statements = new Map<number, IndexStatements>();
  readonly #reads = new Map<string, Database.Statement>();

  constructor(db: Database.Database, where: SqliteWhere, hash: Hash) {
    this.#db = db;
    this.#where = where;
    this.#hash = hash;
    this.#spec = db.prepare(
      "SELECT id, fields, tokenizer, language FROM cellar_search WHERE id = ?",
    );
    this.#ids = db.prepare("SELECT id FROM cellar_search").pluck();
  }

  /** Creates an index's tables, or finds them there with the same spec. */
  create(spec: SearchIndexSpec): void {
    assertSearchSpec(spec);
    const existing = this.#specOf(spec.id);
    if (existing) {
      if (!sameSpec(existing, spec)) throw alreadyExists(spec);
      return;
    }
    const t = tableOf(spec.id);
    const columns = Array.from({ length: spec.fields }, (_, i) => `c${i}`).join(", ");
    this.#db
      .prepare("INSERT INTO cellar_search (id, fields, tokenizer, language) VALUES (?, ?, ?, ?)")
      .run(spec.id, spec.fields, spec.tokenizer, spec.language);
    this.#db.exec(`CREATE VIRTUAL TABLE ${t} USING fts5(${columns}, tokenize = '${TOKENIZE[spec.tokenizer]}');
      CREATE TABLE ${t}_keys (doc INTEGER PRIMARY KEY, entry BLOB NOT NULL UNIQUE);`);
  }

  drop(id: number): void {
    if (!Number.isSafeInteger(id) || id < 0) return;
    const t = tableOf(id);
    this.#statements.delete(id);
    this.#db.exec(`DROP TABLE IF EXISTS ${t}; DROP TABLE IF EXISTS ${t}_keys;`);
    this.#db.prepare("DELETE FROM cellar_search WHERE id = ?").run(id);
  }

  /**
   * Applies a committed write's documents. Those of an index that does not exist (dropped while
   * the write was on its way) are ignored; one with the wrong number of fields throws, and the
   * caller's savepoint undoes the whole write.
   */
  apply(docs: readonly SearchDoc[]): void {
    const specs = new Map<number, SearchIndexSpec | null>();
    for (const doc of docs) {
      let spec = specs.get(doc.index);
      if (spec === undefined) {
        spec = this.#specOf(doc.index);
        specs.set(doc.index, spec);
      }
      if (!spec) continue;
      const st = this.#statementsOf(spec);
      const current = st.docOf.get(doc.key) as number | undefined;
      if (doc.fields === null) {
        if (current !== undefined) {
          st.remove.run(current);
          st.removeKey.run(current);
        }
        continue;
      }
      assertDocFields(spec, doc.fields);
      const fields = doc.fields.map(searchableText);
      if (current !== undefined) {
        st.update.run(...fields, current);
      } else {
        const { lastInsertRowid } = st.addKey.run(doc.key);
        st.insert.run(lastInsertRowid, ...fields);
      }
    }
  }

  /** Removes these keys' documents from every index. */
  forget(keys: readonly Uint8Array[]): void {
    for (const spec of this.#all()) {
      const st = this.#statementsOf(spec);
      for (const key of keys) {
        const current = st.docOf.get(key) as number | undefined;
        if (current === undefined) continue;
        st.remove.run(current);
        st.removeKey.run(current);
      }
    }
  }

  /** Removes the documents of the keys in `[start, end)` from every index. */
  forgetRange(start: Uint8Array, end: Uint8Array): void {
    for (const spec of this.#all()) {
      const st = this.#statementsOf(spec);
      st.removeRange.run(start, end);
      st.removeKeyRange.run(start, end);
    }
  }

  search(request: SearchRequest): SearchHit[] {
    const spec = this.#specOf(request.index);
    if (!spec) throw unknownIndex(request.index);
    assertQueryShape(request.query);
    const match = matchExpression(request.query, spec.tokenizer);
    try {
      return this.#db.transaction(() => this.#search(spec, match, request))();
    } catch (error) {
      // Built by construction, the expression should always parse: this is the safety net
      // that keeps an engine's refusal an `INVALID_QUERY`.
      if (error instanceof Error && error.message.startsWith("fts5:"))
        throw new KvError("INVALID_QUERY", `SQLite could not run the search: ${error.message}`);
      throw error;
    }
  }

  #search(spec: SearchIndexSpec, match: string, request: SearchRequest): SearchHit[] {
    const meta = request.metadata === true;
    const t = tableOf(spec.id);
    const params = {
      match,
      start: request.range.start,
      end: request.range.end,
      now: request.now,
      limit: request.limit,
      offset: request.offset,
    };
    const sql = (condition: string | null) => `SELECT ${meta ? META_COLUMNS : BASE_COLUMNS},
        -bm25(${t}) AS score, ${t}.rowid AS doc
      FROM ${t} JOIN ${t}_keys m ON m.doc = ${t}.rowid JOIN cellar_kv ON cellar_kv.key = m.entry
      WHERE ${t} MATCH @match AND m.entry >= @start AND m.entry < @end AND ${LIVE}
        ${condition === null ? "" : `AND ${condition}`}
      ORDER BY score DESC, cellar_kv.key LIMIT @limit OFFSET @offset`;
    const rows = (
      request.where
        ? this.#where.run(request.where, sql, (stmt, where) =>
            stmt.raw().all({ ...where, ...params }),
          )
        : this.#read(sql(null)).raw().all(params)
    ) as Row[];
    const width = meta ? META_WIDTH : 5;
    const hits = rows.map((row) => ({
      entry: toEntry(row, meta, this.#hash),
      score: row[width] as number,
      doc: row[width + 1] as number,
    }));
    if (!request.highlight || hits.length === 0)
      return hits.map(({ entry, score }) => ({ entry, score }));
    const snippets = this.#highlights(
      spec,
      match,
      request.highlight,
      hits.map((hit) => hit.doc),
    );
    return hits.map(({ entry, score, doc }) => ({
      entry,
      score,
      highlights: snippets.get(doc) ?? Array.from({ length: spec.fields }, () => null),
    }));
  }

  /**
   * One snippet per field of each document, with the markers bound as parameters; null for a
   * field where nothing matched (its `highlight()` marks nothing).
   */
  #highlights(
    spec: SearchIndexSpec,
    match: string,
    markers: { start: string; end: string },
    docs: readonly number[],
  ): Map<number, (string | null)[]> {
    const t = tableOf(spec.id);
    const columns = Array.from(
      { length: spec.fields },
      (_, i) =>
        `CASE WHEN highlight(${t}, ${i}, @start, @end) IS NOT c${i} THEN snippet(${t}, ${i}, @start, @end, '…', ${SNIPPET_TOKENS[spec.tokenizer]}) END`,
    );
    const rows = this.#read(
      `SELECT rowid, ${columns.join(", ")} FROM ${t}
      WHERE ${t} MATCH @match AND rowid IN (SELECT value FROM json_each(@docs))`,
    )
      .raw()
      .all({ match, start: markers.start, end: markers.end, docs: JSON.stringify(docs) }) as [
      number,
      ...(string | null)[],
    ][];
    return new Map(rows.map(([doc, ...snippets]) => [doc, snippets]));
  }

  #specOf(id: number): SearchIndexSpec | null {
    if (!Number.isSafeInteger(id) || id < 0) return null;
    return (this.#spec.get(id) as SearchIndexSpec | undefined) ?? null;
  }

  #all(): SearchIndexSpec[] {
    return (this.#ids.all() as number[]).map((id) => this.#specOf(id)!);
  }

  #statementsOf(spec: SearchIndexSpec): IndexStatements {
    let st = this.#statements.get(spec.id);
    if (st) return st;
    const t = tableOf(spec.id);
    const columns = Array.from({ length: spec.fields }, (_, i) => `c${i}`);
    const p = (sql: string) => this.#db.prepare(sql);
    st = {
      docOf: p(`SELECT doc FROM ${t}_keys WHERE entry = ?`).pluck(),
      addKey: p(`INSERT INTO ${t}_keys (entry) VALUES (?)`),
      insert: p(
        `INSERT INTO ${t} (rowid, ${columns.join(", ")}) VALUES (?, ${columns.map(() => "?").join(", ")})`,
      ),
      update: p(`UPDATE ${t} SET ${columns.map((c) => `${c} = ?`).join(", ")} WHERE rowid = ?`),
      remove: p(`DELETE FROM ${t} WHERE rowid = ?`),
      removeKey: p(`DELETE FROM ${t}_keys WHERE doc = ?`),
      removeRange: p(
        `DELETE FROM ${t} WHERE rowid IN (SELECT doc FROM ${t}_keys WHERE entry >= ? AND entry < ?)`,
      ),
      removeKeyRange: p(`DELETE FROM ${t}_keys WHERE entry >= ? AND entry < ?`),
    };
    this.#statements.set(spec.id, st);
    return st;
  }

  /** Read statements by text; the text depends on the index and the request's shape only. */
  #read(sql: string): Database.Statement {
    let stmt = this.#reads.get(sql);
    if (!stmt) {
      if (this.#reads.size >= 64) this.#reads.delete(this.#reads.keys().next().value!);
      stmt = this.#db.prepare(sql);
      this.#reads.set(sql, stmt);
    }
    return stmt;
  }
}

/** The FTS5 table of an index: its name is made of the numeric id alone. */
function tableOf(id: number): string {
  if (!Number.isSafeInteger(id) || id < 0) throw unknownIndex(id);
  return `cellar_search_${id}`;
}

/** A string of FTS5's query syntax: always a phrase, whatever it holds. */
function quote(text: string): string {
  // FTS5 reads a NUL as the end of the query.
  return `"${text.replaceAll("\u0000", " ").replaceAll('"', '""')}"`;
}

/**
 * The FTS5 expression of a parsed query for an index with this tokenizer; `exact` (under an
 * exclusion) looks trigram terms up as they are.
 */
export function matchExpression(
  query: SearchQuery,
  tokenizer: SearchTokenizer,
  exact = false,
): string {
  switch (query.op) {
    case "term":
      if (tokenizer !== "trigram")
        return query.prefix ? `${quote(query.text)}*` : quote(query.text);
      if (exact) break;
      return `(${queryTrigrams(query.text).map(quote).join(" OR ")})`;
    case "phrase":
      if (tokenizer === "trigram") break;
      return quote(query.text);
    case "or":
      return query.queries.map((q) => `(${matchExpression(q, tokenizer, exact)})`).join(" OR ");
    case "not":
      // Only an `and` holds a `not`, and spells it there.
      throw new KvError("INVALID_QUERY", "an exclusion needs something to exclude from");
    case "and": {
      const positive = query.queries.filter((q) => q.op !== "not");
      let out = positive.map((q) => `(${matchExpression(q, tokenizer, exact)})`).join(" AND ");
      for (const q of query.queries) {
        if (q.op === "not") out = `(${out}) NOT (${matchExpression(q.query, tokenizer, true)})`;
      }
      return out;
    }
  }
  // A trigram phrase, or an excluded trigram term: the text as it is, as a substring.
  queryTrigrams(query.text);
  return quote(query.text);
}
