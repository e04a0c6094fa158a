/**
 * What the search tests of the drivers share: each driver on fresh storage (memory, a SQLite
 * file in a temporary folder, a PostgreSQL schema of its own), and documents written the way the
 * core writes them, through `atomicWrite` with `searchDocs`.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { decodeKey, encodeKey } from "../../src/codec/key.js";
import { encodeValue } from "../../src/codec/value.js";
import {
  hasSearch,
  type KvDriver,
  type KvSearchStore,
  type SearchDoc,
  type SearchHit,
  type SearchRequest,
} from "../../src/contract/index.js";
import { parseSearchQuery } from "../../src/core/search/query.js";
import { memoryDriver } from "../../src/drivers/memory/index.js";
import { postgresDriver } from "../../src/drivers/postgres/index.js";
import { prefixEnd } from "../../src/drivers/shared/range.js";
import { sqliteDriver } from "../../src/drivers/sqlite/index.js";

export const POSTGRES =
  process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export const NOW = 1_700_000_000_000;

export type SearchDriver = KvDriver & KvSearchStore;

export interface OpenDriver {
  readonly driver: SearchDriver;
  close(): Promise<void>;
}

/** The drivers under test, each opened on fresh storage by `open`. */
export const DRIVERS: readonly { name: string; open: () => Promise<OpenDriver> }[] = [
  { name: "memory", open: async () => wrap(memoryDriver(), async () => {}) },
  {
    name: "sqlite",
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), "cellar-search-"));
      return wrap(sqliteDriver(join(dir, "search.db")), async () =>
        rmSync(dir, { recursive: true, force: true }),
      );
    },
  },
  {
    name: "postgres",
    open: async () => {
      const schema = `cellar_search_${randomBytes(4).toString("hex")}`;
      return wrap(await postgresDriver(`${POSTGRES}?schema=${schema}`), () => dropSchema(schema));
    },
  },
];

function wrap(driver: KvDriver, cleanup: () => Promise<void>): OpenDriver {
  if (!hasSearch(driver)) throw new Error("this driver has no search");
  return {
    driver,
    async close() {
      await driver.close();
      await cleanup();
    },
  };
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

let prefixes = 0;

/** A key prefix no other test writes under, and keys below it by name. */
export function space() {
  const prefix = encodeKey(["search", prefixes++]);
  return {
    prefix,
    range: { start: prefix, end: prefixEnd(prefix) },
    key: (name: string | number) => encodeKey([name], prefix),
  };
}

export interface DocInput {
  /** The document's text fields; the entry's value is `value`, or `{ fields }`. */
  readonly fields: readonly string[] | null;
  readonly value?: unknown;
  readonly expiresAt?: number | null;
}

/** One atomic write setting each entry and applying its document in index `index`. */
export function write(
  driver: SearchDriver,
  index: number,
  key: (name: string) => Uint8Array,
  docs: Readonly<Record<string, DocInput>>,
  options: { checks?: { key: Uint8Array; versionstamp: string | null }[]; now?: number } = {},
) {
  const names = Object.keys(docs);
  const searchDocs: SearchDoc[] = names.map((name) => ({
    index,
    key: key(name),
    fields: docs[name]!.fields,
  }));
  return driver.atomicWrite({
    checks: options.checks ?? [],
    mutations: names.map((name) => {
      const doc = docs[name]!;
      return doc.fields === null && doc.value === undefined
        ? { type: "delete" as const, key: key(name) }
        : {
            type: "set" as const,
            key: key(name),
            value: encodeValue(doc.value ?? { fields: doc.fields }),
            expiresAt: doc.expiresAt ?? null,
          };
    }),
    searchDocs,
    now: options.now ?? NOW,
  });
}

/** Runs a query of the language; the hits' keys' last parts, best first. */
export async function find(
  driver: SearchDriver,
  request: Omit<SearchRequest, "query" | "limit" | "offset" | "now"> & {
    query: string;
    limit?: number;
    offset?: number;
    now?: number;
  },
): Promise<{ names: unknown[]; hits: SearchHit[] }> {
  const hits = await driver.search({
    ...request,
    query: parseSearchQuery(request.query),
    limit: request.limit ?? 100,
    offset: request.offset ?? 0,
    now: request.now ?? NOW,
  });
  return { names: hits.map((hit) => decodeKey(hit.entry.key).at(-1)), hits };
}
