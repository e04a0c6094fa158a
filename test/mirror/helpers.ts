/**
 * What the mirror tests share: the PostgreSQL at 127.0.0.1:5432 (database `test`), a fresh
 * schema per test dropped after the file, a connection of the test's own to read the tables
 * and change them as another service would, and waiting on conditions with a deadline.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll } from "vitest";
import { type Kv, openKv } from "../../src/index.js";

export const POSTGRES =
  process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const run = randomBytes(4).toString("hex");
const schemas: string[] = [];
const dirs: string[] = [];
let client: pg.Client | null = null;

afterAll(async () => {
  const db = await sql();
  for (const schema of schemas) await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await db.end();
  client = null;
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A schema name no other test uses; dropped with everything in it after the file. */
export function freshSchema(name = "m"): string {
  const schema = `cellar_mirror_test_${run}_${name}_${schemas.length}`;
  schemas.push(schema);
  return schema;
}

/** The mirror URL of `schema`. */
export const urlOf = (schema: string) => `${POSTGRES}?schema=${schema}`;

/** The test's own connection, as another service's. */
export async function sql(): Promise<pg.Client> {
  if (!client) {
    client = new pg.Client({ connectionString: POSTGRES });
    await client.connect();
  }
  return client;
}

/** The rows of `schema.table`, by key. */
export async function rows(schema: string, table: string): Promise<Record<string, unknown>[]> {
  const db = await sql();
  const result = await db.query(`SELECT * FROM "${schema}"."${table}" ORDER BY key`);
  return result.rows;
}

/** `key → value` of the table's rows. */
export async function values(schema: string, table: string): Promise<Record<string, unknown>> {
  return Object.fromEntries((await rows(schema, table)).map((row) => [row.key, row.value]));
}

/** Waits until `check` resolves to true, polling; fails after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what = "condition",
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A folder for SQLite files, removed after the file. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "cellar-mirror-"));
  dirs.push(dir);
  return dir;
}

/** The stores every out-direction case runs on. */
export const STORES = {
  memory: (options?: Parameters<typeof openKv>[1]) => openKv(":memory:", options),
  sqlite: (options?: Parameters<typeof openKv>[1]) =>
    openKv(join(tempDir(), "mirror.db"), { durability: "normal", ...options }),
} satisfies Record<string, (options?: Parameters<typeof openKv>[1]) => Promise<Kv>>;

/** A logger that keeps its lines, for assertions on what a mirror reports. */
export function recordingLogger() {
  const lines: { level: string; fields: object; message: string }[] = [];
  const at = (level: string) => (fields: object, message: string) => {
    lines.push({ level, fields, message });
  };
  return { lines, logger: { info: at("info"), warn: at("warn"), error: at("error") } };
}
