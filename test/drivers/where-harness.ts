/**
 * What the where-filter tests of the SQL drivers share: the three drivers on fresh storage, a
 * batch of documents written under a prefix of its own, and the filtered reads of each driver
 * next to what the JavaScript evaluator selects.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { decodeKey, encodeKey } from "../../src/codec/key.js";
import { decodeValue, encodeValue } from "../../src/codec/value.js";
import { type Filter, matchesFilter } from "../../src/contract/filter.js";
import type { KvDriver } from "../../src/contract/index.js";
import { memoryDriver } from "../../src/drivers/memory/index.js";
import { postgresDriver } from "../../src/drivers/postgres/index.js";
import { prefixEnd } from "../../src/drivers/shared/range.js";
import { sqliteDriver } from "../../src/drivers/sqlite/index.js";

/** The server the tests use; CI starts it (see .ci/run). */
export const POSTGRES =
  process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export interface Drivers {
  readonly all: readonly (readonly [name: string, driver: KvDriver])[];
  readonly sqliteFile: string;
  readonly schema: string;
  close(): Promise<void>;
}

export async function openDrivers(): Promise<Drivers> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-where-"));
  const sqliteFile = join(dir, "where.db");
  const schema = `cellar_where_${randomBytes(4).toString("hex")}`;
  const all = [
    ["memory", memoryDriver()],
    ["sqlite", sqliteDriver(sqliteFile)],
    ["postgres", await postgresDriver(`${POSTGRES}?schema=${schema}`)],
  ] as const;
  return {
    all,
    sqliteFile,
    schema,
    async close() {
      for (const [, driver] of all) await driver.close();
      rmSync(dir, { recursive: true, force: true });
      const client = new pg.Client({ connectionString: POSTGRES });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}

let batches = 0;

/** Writes `docs` to every driver under a new prefix; entry `i` has key `[…prefix, i]`. */
export async function writeBatch(drivers: Drivers, docs: readonly unknown[]) {
  const prefix = encodeKey(["where", batches++]);
  const mutations = docs.map((doc, i) => ({
    type: "set" as const,
    key: encodeKey([i], prefix),
    value: encodeValue(doc),
    expiresAt: null,
  }));
  for (const [, driver] of drivers.all)
    await driver.atomicWrite({ checks: [], mutations, now: NOW });
  return { start: prefix, end: prefixEnd(prefix) };
}

export const NOW = 1_700_000_000_000;

/** The positions of the entries a read returned. */
export const positions = (entries: readonly { key: Uint8Array }[]) =>
  entries.map((e) => decodeKey(e.key).at(-1) as number);

/** The positions of the documents the JavaScript evaluator selects. */
export const expected = (docs: readonly unknown[], filter: Filter) =>
  docs.flatMap((doc, i) => (matchesFilter(filter, decodeValue(encodeValue(doc))) ? [i] : []));
