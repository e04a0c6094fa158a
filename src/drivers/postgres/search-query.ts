/**
 * Searches on PostgreSQL (see `search.ts` for the tables): the SQL of a parsed query, pages kept
 * full under a where filter, and highlights.
 *
 * A query is SQL built from the parsed query's structure, with every text bound as a parameter:
 * `plainto_tsquery` for a term, `phraseto_tsquery` for a phrase, `to_tsquery` of a quoted
 * literal with `:*` for a prefix, combined with `&&`, `||` and `!!`; for a trigram index, pg_trgm's
 * `<%` and `word_similarity` on the folded text, and `strpos` for phrases and exclusions. Scores
 * are `ts_rank_cd` (cover density, divided by 1 + the log of the document's length): not BM25,
 * and on a smaller scale than SQLite's; trigram scores add up word similarities (0 to 1 a term).
 * Highlights come from `ts_headline`, or for trigram indexes from the same JavaScript as the
 * memory driver's.
 */
import type pg from "pg";
import type {
  RawEntry,
  SearchHit,
  SearchIndexSpec,
  SearchQuery,
  SearchRequest,
} from "../../contract/index.js";
import { KvError } from "../../errors.js";
import {
  assertQueryShape,
  fold,
  matchSpans,
  positiveLeaves,
  queryTrigrams,
  snippet,
} from "../shared/search-text.js";
import { BASE_COLUMNS, entryOf, type KvRow, live, META_COLUMNS } from "./rows.js";
import { rowFilter } from "./where.js";

/** An index as the driver knows it: its spec and the qualified name of its configuration. */
export interface PostgresSearchSpec extends SearchIndexSpec {
  readonly config: string | null;
}

/** Runs one statement: a read on its own, or inside the caller's transaction. */
export type Run = (query: pg.QueryConfig) => Promise<pg.QueryResult>;

export interface SearchAccess {
  /** One read statement. */
  readonly read: Run;
  /** Runs `work` in a transaction it opens and ends itself (see `Committer.transaction`). */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
}

/** Binds a value as the next parameter; the placeholder, cast to `type`. */
type Bind = (value: unknown, type?: string) => string;

/** ts_headline's options besides the markers: about FTS5's 16-token snippets. */
const HEADLINE = "MaxWords=16, MinWords=8";

/** Searches of one schema's indexes. */
export class SearchRunner {
  readonly #s: string;
  readonly #access: SearchAccess;

  constructor(s: string, access: SearchAccess) {
    this.#s = s;
    this.#access = access;
  }

  /** Runs a search on `spec`'s index; `trgm` is pg_trgm's schema, quoted, if installed. */
  async run(
    spec: PostgresSearchSpec,
    trgm: string | null,
    request: SearchRequest,
  ): Promise<SearchHit[]> {
    assertQueryShape(request.query);
    if (request.highlight) assertHeadlineMarkers(request.highlight);
    try {
      return await this.#search(spec, trgm, request);
    } catch (error) {
      // Built by construction, a tsquery should always parse: this is the safety net that
      // keeps an engine's refusal an `INVALID_QUERY`.
      const cause = (error instanceof KvError ? error.cause : error) as Error | undefined;
      if (
        (cause as { code?: string } | undefined)?.code === "42601" &&
        /tsquery/.test(cause!.message)
      )
        throw new KvError(
          "INVALID_QUERY",
          `PostgreSQL could not run the search: ${cause!.message}`,
        );
      throw error;
    }
  }

  async #search(
    spec: PostgresSearchSpec,
    trgm: string | null,
    request: SearchRequest,
  ): Promise<SearchHit[]> {
    const meta = request.metadata === true;
    const trigram = spec.tokenizer === "trigram";
    const values: unknown[] = [spec.id, request.range.start, request.range.end, request.now];
    const bind = (value: unknown, type = "text") => {
      values.push(value);
      return `$${values.length}::${type}`;
    };
    const limit = bind(0, "int8");
    const offset = bind(0, "int8");
    const { match, score, prelude } = trigram
      ? trigramSql(request.query, bind, trgm)
      : tsquerySql(spec, request.query, bind);
    const filter = request.where ? rowFilter(request.where, values.length + 1) : null;
    if (filter) values.push(...filter.values);
    const withFields = trigram && request.highlight !== undefined;
    const text = `${prelude}SELECT ${meta ? META_COLUMNS : BASE_COLUMNS}, d.score${withFields ? ", d.fields" : ""}
      FROM (
        SELECT d.key AS doc_key, d.fields, ${score} AS score
        FROM ${this.#s}.cellar_search_docs d
        WHERE d.index_id = $1 AND d.key >= $2 AND d.key < $3 AND ${match}
      ) d JOIN ${this.#s}.cellar_kv ON cellar_kv.key = d.doc_key
      WHERE ${live(4)}${filter ? ` AND ${filter.sql}` : ""}
      ORDER BY d.score DESC, d.doc_key LIMIT ${limit} OFFSET ${offset}`;
    type Row = KvRow & { score: number; fields?: string[] };
    const page = async (run: Run, count: number, skip: number) =>
      (await run({ text, values: values.with(4, count).with(5, skip) })).rows as Row[];
    let rows: Row[];
    if (!filter) {
      rows = await page(this.#access.read, request.limit, request.offset);
    } else {
      // Rows SQL cannot filter come back for `rawMatches`: read more while they fall short.
      const wanted = request.offset + request.limit;
      const settle = async (run: Run, batch: number): Promise<Row[] | null> => {
        for (;;) {
          const found = await page(run, batch, 0);
          const accepted = found.filter((row) => filter.accepts(row));
          if (accepted.length >= wanted || found.length < batch) return accepted;
          if (run === this.#access.read) return null;
          batch *= 2;
        }
      };
      rows =
        (await settle(this.#access.read, wanted)) ??
        (await this.#access.transaction(async (client) => {
          const run: Run = (query) => client.query(query);
          await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
          const found = (await settle(run, wanted * 2))!;
          await client.query("COMMIT");
          return found;
        }));
      rows = rows.slice(request.offset, wanted);
    }
    const hits = rows.map((row) => ({ entry: entryOf(row, meta), score: row.score, row }));
    const { highlight } = request;
    if (!highlight || hits.length === 0) return hits.map(({ entry, score }) => ({ entry, score }));
    const highlights = trigram
      ? hits.map(({ row }) => trigramHighlights(row.fields!, request.query, highlight))
      : await this.#headlines(
          spec,
          request.query,
          highlight,
          hits.map((hit) => hit.entry),
        );
    return hits.map(({ entry, score }, i) => ({ entry, score, highlights: highlights[i]! }));
  }

  /**
   * `ts_headline` snippets of each hit's fields; null for a field where no term looked for
   * matches. The markers reach `ts_headline` inside its options string, a bound parameter.
   */
  async #headlines(
    spec: PostgresSearchSpec,
    query: SearchQuery,
    markers: { start: string; end: string },
    entries: readonly RawEntry[],
  ): Promise<(string | null)[][]> {
    const values: unknown[] = [spec.id, entries.map((entry) => entry.key)];
    const bind = (value: unknown, type = "text") => {
      values.push(value);
      return `$${values.length}::${type}`;
    };
    const config = bind(spec.config, "regconfig");
    const options = bind(`StartSel="${markers.start}", StopSel="${markers.end}", ${HEADLINE}`);
    const leaves = positiveLeaves(query);
    const any = leaves.length === 1 ? leaves[0]! : { op: "or" as const, queries: leaves };
    const { rows } = await this.#access.read({
      text: `WITH q AS (SELECT ${tsquery(query, config, bind)} AS q, ${tsquery(any, config, bind)} AS wanted)
        SELECT d.key, ARRAY(
          SELECT CASE WHEN to_tsvector(${config}, u.field) @@ (SELECT wanted FROM q)
            THEN ts_headline(${config}, u.field, (SELECT q FROM q), ${options}) END
          FROM unnest(d.fields) WITH ORDINALITY AS u(field, n) ORDER BY u.n
        ) AS highlights
        FROM ${this.#s}.cellar_search_docs d WHERE d.index_id = $1 AND d.key = ANY($2::bytea[])`,
      values,
    });
    const byKey = new Map(
      (rows as { key: Buffer; highlights: (string | null)[] }[]).map((row) => [
        row.key.toString("latin1"),
        row.highlights,
      ]),
    );
    return entries.map(
      (entry) =>
        byKey.get(Buffer.from(entry.key).toString("latin1")) ??
        Array.from({ length: spec.fields }, () => null),
    );
  }
}

/** The tsquery of a word or stemmed index's query, computed once in a CTE. */
function tsquerySql(spec: PostgresSearchSpec, query: SearchQuery, bind: Bind) {
  const config = bind(spec.config, "regconfig");
  const q = "(SELECT q FROM q)";
  return {
    prelude: `WITH q AS (SELECT ${tsquery(query, config, bind)} AS q) `,
    match: `d.tsv @@ ${q}`,
    score: `ts_rank_cd(d.tsv, ${q}, 1)`,
  };
}

/** Conditions and scores on the folded text of a trigram index. */
function trigramSql(query: SearchQuery, bind: Bind, trgm: string | null) {
  if (trgm === null)
    throw new KvError("UNSUPPORTED", "trigram search on PostgreSQL needs the pg_trgm extension");
  const build = (q: SearchQuery, exact: boolean): { match: string; score: string } => {
    switch (q.op) {
      case "term":
      case "phrase": {
        queryTrigrams(q.text);
        const text = bind(fold(q.text.replaceAll("\u0000", " ")));
        if (q.op === "term" && !exact) {
          return {
            match: `(${text} OPERATOR(${trgm}.<%) d.folded)`,
            score: `${trgm}.word_similarity(${text}, d.folded)`,
          };
        }
        const match = `(strpos(d.folded, ${text}) > 0)`;
        return { match, score: `(CASE WHEN ${match} THEN 1 ELSE 0 END)` };
      }
      case "not":
        throw new KvError("INVALID_QUERY", "an exclusion needs something to exclude from");
      case "or": {
        const parts = q.queries.map((member) => build(member, exact));
        return {
          match: `(${parts.map((p) => p.match).join(" OR ")})`,
          score: `(${parts.map((p) => p.score).join(" + ")})`,
        };
      }
      case "and": {
        const parts = q.queries.filter((m) => m.op !== "not").map((m) => build(m, exact));
        const excluded = q.queries.flatMap((m) =>
          m.op === "not" ? [`NOT ${build(m.query, true).match}`] : [],
        );
        return {
          match: `(${[...parts.map((p) => p.match), ...excluded].join(" AND ")})`,
          score: `(${parts.map((p) => p.score).join(" + ")})`,
        };
      }
    }
  };
  return { prelude: "", ...build(query, false) };
}

/**
 * The markers inside `ts_headline`'s options: double-quoted there, so a `"` would end them
 * (and the core refuses `,` and `=` too, see `assertHighlightMarkers`).
 */
function assertHeadlineMarkers(markers: { start: string; end: string }): void {
  for (const marker of [markers.start, markers.end]) {
    if (/["\p{Cc}]/u.test(marker) || marker.length === 0) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `a highlight marker on PostgreSQL is non-empty text without " or control characters, got ${JSON.stringify(marker)}`,
      );
    }
  }
}

/**
 * The tsquery expression of a parsed query: each term and phrase a bound parameter. A prefix is
 * bound with its words only (letters and digits), so `quote_literal` never needs an escape
 * that `to_tsquery` would misread.
 */
function tsquery(query: SearchQuery, config: string, bind: Bind): string {
  switch (query.op) {
    case "term": {
      const text = query.text.replaceAll("\u0000", " ");
      if (!query.prefix) return `plainto_tsquery(${config}, ${bind(text)})`;
      const words = text.replace(/[^\p{L}\p{N}\p{M}]+/gu, " ").trim();
      return `to_tsquery(${config}, quote_literal(${bind(words)}) || ':*')`;
    }
    case "phrase":
      return `phraseto_tsquery(${config}, ${bind(query.text.replaceAll("\u0000", " "))})`;
    case "not":
      return `(!! ${tsquery(query.query, config, bind)})`;
    case "and":
      return `(${query.queries.map((q) => tsquery(q, config, bind)).join(" && ")})`;
    case "or":
      return `(${query.queries.map((q) => tsquery(q, config, bind)).join(" || ")})`;
  }
}

/** A trigram index's highlights, from its stored fields. */
function trigramHighlights(
  fields: readonly string[],
  query: SearchQuery,
  markers: { start: string; end: string },
): (string | null)[] {
  const leaves = positiveLeaves(query);
  return fields.map((field) => snippet(field, matchSpans(field, leaves, "trigram"), markers));
}
