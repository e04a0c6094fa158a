/**
 * Full-text search on PostgreSQL.
 *
 * Every index's documents share one table, `cellar_search_docs (index_id, key, fields text[],
 * tsv tsvector, folded text)`, with a GIN index on `tsv` (see `schema.ts`). Word and stemmed
 * indexes store a `tsvector` made with the index's text search configuration, which the
 * driver creates in its schema: `cellar_word` (a copy of `simple`) and `cellar_stemmed` (of
 * `english`: Snowball's English stemmer and stop words), both folding diacritics through
 * `unaccent` when that extension can be created, and as their originals otherwise. Trigram
 * indexes store the folded text and match with pg_trgm's word similarity (`<%`, over a GIN
 * `gin_trgm_ops` index made with the first trigram index), so a term matches where some extent
 * of the text shares enough of its trigrams (the extension's threshold, 0.6 by default): fewer
 * documents than SQLite's any-trigram match, ranked by that similarity.
 *
 * Queries are SQL built from the parsed query's structure, with every text bound as a
 * parameter: `plainto_tsquery` for a term, `phraseto_tsquery` for a phrase, `to_tsquery` of a
 * quoted literal with `:*` for a prefix, combined with `&&`, `||` and `!!`. Scores are
 * `ts_rank_cd` (cover density, divided by 1 + the log of the document's length): not BM25, and
 * on a smaller scale than SQLite's; trigram scores add up word similarities (0 to 1 a term).
 * Highlights come from `ts_headline`, or for trigram indexes from the same JavaScript as the
 * memory driver's.
 */
import type pg from "pg";
import type {
  RawEntry,
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
  fold,
  matchSpans,
  positiveLeaves,
  queryTrigrams,
  sameSpec,
  searchableText,
  snippet,
  unknownIndex,
} from "../shared/search-text.js";
import { BASE_COLUMNS, entryOf, type KvRow, live, META_COLUMNS, pipeline } from "./rows.js";
import { rowFilter } from "./where.js";

/** An index as the driver knows it: its spec and the qualified name of its configuration. */
export interface PostgresSearchSpec extends SearchIndexSpec {
  readonly config: string | null;
}

/** A document as a commit stores it (see `CommitBatch`). */
export interface StagedDoc {
  readonly index: number;
  readonly key: Uint8Array;
  /** Null: the key's document is removed. */
  readonly fields: readonly string[] | null;
  /** The fields folded, for a trigram index. */
  readonly folded: string | null;
}

/** Runs one statement: a read on its own, or inside the caller's transaction. */
export type Run = (query: pg.QueryConfig) => Promise<pg.QueryResult>;

export interface SearchAccess {
  /** One read statement. */
  readonly read: Run;
  /** Runs `work` in a transaction it opens and ends itself (see `Committer.transaction`). */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
}

const CONFIGS: Record<Exclude<SearchTokenizer, "trigram">, { name: string; copy: string }> = {
  word: { name: "cellar_word", copy: "simple" },
  stemmed: { name: "cellar_stemmed", copy: "english" },
};

/** ts_headline's options besides the markers: about FTS5's 16-token snippets. */
const HEADLINE = "MaxWords=16, MinWords=8";

/** Search indexes of one schema. */
export class PostgresSearch {
  readonly #s: string;
  readonly #schema: string;
  readonly #access: SearchAccess;
  readonly #specs = new Map<number, PostgresSearchSpec>();
  /** pg_trgm's schema, quoted, once a trigram index needs it. */
  #trgm: string | null = null;

  constructor(s: string, schema: string, access: SearchAccess) {
    this.#s = s;
    this.#schema = schema;
    this.#access = access;
  }

  /** Whether every document's index is known (else {@link refresh} before staging them). */
  knows(docs: readonly SearchDoc[]): boolean {
    return docs.every((doc) => this.#specs.has(doc.index));
  }

  /** Reloads the catalog, which other processes may have changed. */
  async refresh(run: Run = this.#access.read): Promise<void> {
    const { rows } = await run({
      text: `SELECT id, fields, tokenizer, language, config::text AS config,
          (SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = 'pg_trgm') AS trgm
        FROM (SELECT 1) one LEFT JOIN ${this.#s}.cellar_search_indexes ON true`,
    });
    this.#specs.clear();
    for (const row of rows as (PostgresSearchSpec & { id: number | null; trgm: string | null })[]) {
      this.#trgm = row.trgm;
      if (row.id === null) continue;
      const { trgm: _, ...spec } = row;
      this.#specs.set(row.id, spec);
    }
  }

  /**
   * The row a commit stores for `doc`, or null for a document of an index this process does
   * not know (dropped): checked and prepared before its write changes anything.
   */
  stage(doc: SearchDoc): StagedDoc | null {
    const spec = this.#specs.get(doc.index);
    if (!spec) return null;
    if (doc.fields === null) return { index: doc.index, key: doc.key, fields: null, folded: null };
    assertDocFields(spec, doc.fields);
    const fields = doc.fields.map(searchableText);
    return {
      index: doc.index,
      key: doc.key,
      fields,
      folded: spec.tokenizer === "trigram" ? fold(fields.join("\n")) : null,
    };
  }

  async create(spec: SearchIndexSpec): Promise<void> {
    assertSearchSpec(spec);
    await this.#access.transaction(async (client) => {
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`cellar:${this.#schema}`]);
      const { rows } = await client.query(
        `SELECT id, fields, tokenizer, language FROM ${this.#s}.cellar_search_indexes WHERE id = $1`,
        [spec.id],
      );
      const existing = rows[0] as SearchIndexSpec | undefined;
      if (existing) {
        await client.query("COMMIT");
        if (!sameSpec(existing, spec)) throw alreadyExists(spec);
        return;
      }
      const config =
        spec.tokenizer === "trigram"
          ? await this.#prepareTrigrams(client)
          : await this.#prepareConfig(client, spec.tokenizer);
      await client.query(
        `INSERT INTO ${this.#s}.cellar_search_indexes (id, fields, tokenizer, language, config)
          VALUES ($1, $2, $3, $4, $5::regconfig)`,
        [spec.id, spec.fields, spec.tokenizer, spec.language, config],
      );
      await client.query("COMMIT");
    });
    await this.refresh();
  }

  /**
   * Removes an index and its documents under the commit lock, so that no commit in flight adds
   * a document to it afterwards.
   */
  async drop(id: number): Promise<void> {
    if (!Number.isSafeInteger(id) || id < 0) return;
    await this.#access.transaction(async (client) => {
      await pipeline(client, [
        { text: "BEGIN" },
        { text: `SELECT value FROM ${this.#s}.cellar_meta WHERE name = 'version' FOR UPDATE` },
        { text: `DELETE FROM ${this.#s}.cellar_search_docs WHERE index_id = $1`, values: [id] },
        { text: `DELETE FROM ${this.#s}.cellar_search_indexes WHERE id = $1`, values: [id] },
        { text: "COMMIT" },
      ]);
    });
    this.#specs.delete(id);
  }

  async search(request: SearchRequest): Promise<SearchHit[]> {
    if (!this.#specs.has(request.index)) await this.refresh();
    const spec = this.#specs.get(request.index);
    if (!spec) throw unknownIndex(request.index);
    assertQueryShape(request.query);
    if (request.highlight) assertHeadlineMarkers(request.highlight);
    try {
      return await this.#search(spec, request);
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

  async #search(spec: PostgresSearchSpec, request: SearchRequest): Promise<SearchHit[]> {
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
      ? this.#trigramSql(request.query, bind)
      : this.#tsquerySql(spec, request.query, bind);
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

  /** The tsquery of a word or stemmed index's query, computed once in a CTE. */
  #tsquerySql(
    spec: PostgresSearchSpec,
    query: SearchQuery,
    bind: (value: unknown, type?: string) => string,
  ) {
    const config = bind(spec.config, "regconfig");
    const q = "(SELECT q FROM q)";
    return {
      prelude: `WITH q AS (SELECT ${tsquery(query, config, bind)} AS q) `,
      match: `d.tsv @@ ${q}`,
      score: `ts_rank_cd(d.tsv, ${q}, 1)`,
    };
  }

  /** Conditions and scores on the folded text of a trigram index. */
  #trigramSql(query: SearchQuery, bind: (value: unknown, type?: string) => string) {
    if (this.#trgm === null)
      throw new KvError("UNSUPPORTED", "trigram search on PostgreSQL needs the pg_trgm extension");
    const trgm = this.#trgm;
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

  /** Creates the index's text search configuration if missing; its qualified name. */
  async #prepareConfig(
    client: pg.ClientBase,
    tokenizer: Exclude<SearchTokenizer, "trigram">,
  ): Promise<string> {
    const { name, copy } = CONFIGS[tokenizer];
    const qualified = `${this.#s}.${name}`;
    const { rowCount } = await client.query(
      `SELECT 1 FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
        WHERE n.nspname = $1 AND c.cfgname = $2`,
      [this.#schema, name],
    );
    if (rowCount === 0) {
      await client.query(
        `CREATE TEXT SEARCH CONFIGURATION ${qualified} (COPY = pg_catalog.${copy})`,
      );
      const unaccent = await ensureExtension(client, "unaccent");
      if (unaccent !== null) {
        const dictionary = copy === "english" ? "english_stem" : "simple";
        await client.query(`ALTER TEXT SEARCH CONFIGURATION ${qualified}
          ALTER MAPPING FOR hword, hword_part, word WITH ${unaccent}.unaccent, ${dictionary}`);
      }
    }
    return qualified;
  }

  /** Creates pg_trgm (if it can) and the GIN index trigram matches use. */
  async #prepareTrigrams(client: pg.ClientBase): Promise<null> {
    const trgm = await ensureExtension(client, "pg_trgm");
    if (trgm === null) {
      throw new KvError(
        "UNSUPPORTED",
        "trigram search on PostgreSQL needs the pg_trgm extension, which this role cannot create",
      );
    }
    await client.query(`CREATE INDEX IF NOT EXISTS cellar_search_docs_trgm
      ON ${this.#s}.cellar_search_docs USING gin (folded ${trgm}.gin_trgm_ops) WHERE folded IS NOT NULL`);
    return null;
  }
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
function tsquery(
  query: SearchQuery,
  config: string,
  bind: (value: unknown, type?: string) => string,
): string {
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

/**
 * Creates an extension if this role may (trusted extensions need no superuser), inside a
 * savepoint so a refusal leaves the transaction usable; the extension's schema, quoted, or null.
 */
async function ensureExtension(
  client: pg.ClientBase,
  name: "unaccent" | "pg_trgm",
): Promise<string | null> {
  await client.query("SAVEPOINT cellar_extension");
  try {
    await client.query(`CREATE EXTENSION IF NOT EXISTS ${name}`);
    await client.query("RELEASE cellar_extension");
  } catch {
    await client.query("ROLLBACK TO cellar_extension");
  }
  const { rows } = await client.query(
    `SELECT quote_ident(n.nspname) AS schema FROM pg_extension e
      JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = $1`,
    [name],
  );
  return (rows[0] as { schema: string } | undefined)?.schema ?? null;
}
