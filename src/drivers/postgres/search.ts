/**
 * Full-text search on PostgreSQL: the catalog of indexes, and documents as commits store them
 * (searches are `search-query.ts`).
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
 */
import type pg from "pg";
import type {
  SearchDoc,
  SearchHit,
  SearchIndexSpec,
  SearchRequest,
  SearchTokenizer,
} from "../../contract/index.js";
import { KvError } from "../../errors.js";
import {
  alreadyExists,
  assertDocFields,
  assertSearchSpec,
  fold,
  sameSpec,
  searchableText,
  unknownIndex,
} from "../shared/search-text.js";
import { pipeline } from "./rows.js";
import {
  type PostgresSearchSpec,
  type Run,
  type SearchAccess,
  SearchRunner,
} from "./search-query.js";

/** A document as a commit stores it (see `CommitBatch`). */
export interface StagedDoc {
  readonly index: number;
  readonly key: Uint8Array;
  /** Null: the key's document is removed. */
  readonly fields: readonly string[] | null;
  /** The fields folded, for a trigram index. */
  readonly folded: string | null;
}

const CONFIGS: Record<Exclude<SearchTokenizer, "trigram">, { name: string; copy: string }> = {
  word: { name: "cellar_word", copy: "simple" },
  stemmed: { name: "cellar_stemmed", copy: "english" },
};

/** Search indexes of one schema. */
export class PostgresSearch {
  readonly #s: string;
  readonly #schema: string;
  readonly #access: SearchAccess;
  readonly #specs = new Map<number, PostgresSearchSpec>();
  /** pg_trgm's schema, quoted, once a trigram index needs it. */
  #trgm: string | null = null;
  readonly #runner: SearchRunner;

  constructor(s: string, schema: string, access: SearchAccess) {
    this.#s = s;
    this.#schema = schema;
    this.#access = access;
    this.#runner = new SearchRunner(s, access);
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
    return this.#runner.run(spec, this.#trgm, request);
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
