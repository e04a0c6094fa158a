import { randomBytes } from "node:crypto";
import pg from "pg";
import { openKv } from "../src/index.js";
import { type Batch, compare, type Section } from "./harness.js";
import {
  awaited,
  ENTRIES,
  KEYS,
  type Key,
  populate,
  type User,
  VALUES,
  writer,
} from "./workload.js";

/** The PostgreSQL the groups use; each makes schemas of its own there and drops them after. */
export const POSTGRES_URL =
  process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const URL = POSTGRES_URL;
/** Connections in Cellar's pool (its default) and in the raw pool it is compared with. */
const POOL = 8;
const WRITERS = 50;

/** `n` rounds of {@link WRITERS} writes started together and awaited with `Promise.all`. */
function rounds(op: (i: number) => Promise<unknown>): Batch {
  let j = 0;
  return async (n) => {
    for (let round = 0; round < n; round++) {
      const writes: Promise<unknown>[] = [];
      for (const end = j + WRITERS; j < end; j++) writes.push(op((j * 7919) % ENTRIES));
      await Promise.all(writes);
    }
  };
}

/**
 * Hand-written node-postgres over the table any PostgreSQL key-value store would use: keys as
 * bytes, values as JSON, one autocommit statement per operation, prepared once per connection.
 */
async function rawPostgres(schema: string, connections: number) {
  const pool = new pg.Pool({ connectionString: URL, max: connections });
  const table = `"${schema}".kv`;
  const encode = (key: readonly unknown[]) => Buffer.from(JSON.stringify(key));
  await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (k bytea PRIMARY KEY, v json NOT NULL)`);
  const upsert = `INSERT INTO ${table} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`;
  const put = (key: Key, value: User) =>
    pool.query({ name: "raw_put", text: upsert, values: [encode(key), JSON.stringify(value)] });
  await pool.query(
    `INSERT INTO ${table} (k, v) SELECT * FROM unnest($1::bytea[], $2::json[]) ON CONFLICT (k) DO NOTHING`,
    [KEYS.map(encode), VALUES.map((v) => JSON.stringify(v))],
  );
  return {
    get: async (i: number) => {
      const { rows } = await pool.query({
        name: "raw_get",
        text: `SELECT v::text FROM ${table} WHERE k = $1`,
        values: [encode(KEYS[i]!)],
      });
      return rows[0] ? (JSON.parse(rows[0].v as string) as User) : null;
    },
    set: writer(put),
    close: () => pool.end(),
  };
}

/** Cellar's PostgreSQL driver against raw node-postgres on the same server. */
export async function postgresSections(log: (step: string) => void): Promise<Section[]> {
  const run = randomBytes(4).toString("hex");
  const schemas = [`cellar_bench_${run}`, `cellar_bench_raw_${run}`, `cellar_bench_raw50_${run}`];
  const kv = await openKv(`${URL}?schema=${schemas[0]}`, { sweepInterval: 0 });
  const raw = await rawPostgres(schemas[1]!, POOL);
  const raw50 = await rawPostgres(schemas[2]!, WRITERS);
  try {
    await populate((key, value) => kv.set(key, value));
    const set = writer((key, value) => kv.set(key, value));

    log("postgres: point get");
    const get = await compare([
      { name: "Cellar (PostgreSQL)", batch: awaited((i) => kv.get(KEYS[i]!)) },
      { name: "node-postgres, raw", batch: awaited(raw.get), target: 0.7 },
    ]);

    log("postgres: sequential set");
    const sequential = await compare([
      { name: "Cellar (PostgreSQL)", batch: awaited(set) },
      { name: "node-postgres, raw upsert", batch: awaited(raw.set), target: 0.7 },
    ]);

    log(`postgres: ${WRITERS} concurrent writers`);
    const concurrent = await compare([
      { name: "Cellar (PostgreSQL)", batch: rounds(set), opsPerCall: WRITERS },
      {
        name: `node-postgres, ${POOL} connections`,
        batch: rounds(raw.set),
        opsPerCall: WRITERS,
        target: 2,
      },
      {
        name: `node-postgres, ${WRITERS} connections`,
        batch: rounds(raw50.set),
        opsPerCall: WRITERS,
      },
    ]);

    return [
      {
        title: `PostgreSQL: sequential point get (${ENTRIES.toLocaleString("en-US")} entries)`,
        rows: get,
      },
      { title: "PostgreSQL: sequential set", rows: sequential },
      { title: `PostgreSQL: ${WRITERS} concurrent writers (ops = sets)`, rows: concurrent },
    ];
  } finally {
    await kv.close();
    await raw.close();
    await raw50.close();
    const client = new pg.Client({ connectionString: URL });
    await client.connect();
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
}
