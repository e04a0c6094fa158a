/**
 * The PostgreSQL driver's change feed across processes: what a commit did to each key reaches
 * another driver on the same schema (through NOTIFY and the change log) exactly as the
 * committing driver reported it, and as the log replays it; and a database whose log predates
 * those key changes is upgraded in place.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import { encodeValue, type RawValue } from "../../src/codec/value.js";
import { formatVersionstamp } from "../../src/codec/versionstamp.js";
import type { ChangeEvent, KvDriver, Mutation, RawEntry } from "../../src/contract/index.js";
import { postgresDriver } from "../../src/drivers/postgres/index.js";
import type { KvEvent } from "../../src/index.js";
import { KvU64, openKv, REST } from "../../src/index.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const run = randomBytes(4).toString("hex");
const schemas: string[] = [];

function freshSchema(): string {
  const schema = `cellar_changes_${run}_${schemas.length}`;
  schemas.push(schema);
  return schema;
}

afterAll(async () => {
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

const ZERO = formatVersionstamp(0);
const T = 1_700_000_000_000;
const key = (...parts: string[]) => encodeKey(parts);
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

/** The events with keys a driver reports, as they arrive. */
function record(driver: KvDriver): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  driver.onChange((event) => {
    if (event.keys.length > 0) events.push(event);
  });
  return events;
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Events in a form that compares by bytes: keys and binary values as hex, keys sorted. */
function plain(events: readonly ChangeEvent[]) {
  const value = (v: RawValue) =>
    v.encoding === "json" ? v : { encoding: v.encoding, data: hex(v.data) };
  const entry = (e: RawEntry | null) => e && { ...e, key: hex(e.key), value: value(e.value) };
  return events.map((event) => ({
    versionstamp: event.versionstamp,
    keys: event.keys.map(hex).sort(),
    entries: event.entries?.map((c) => ({
      ...c,
      key: hex(c.key),
      entry: entry(c.entry),
      previous: entry(c.previous),
    })),
  }));
}

const set = (k: Uint8Array, value: RawValue, expiresAt: number | null = null): Mutation => ({
  type: "set",
  key: k,
  value,
  expiresAt,
});

async function write(driver: KvDriver, now: number, ...mutations: Mutation[]): Promise<string> {
  const done = await driver.atomicWrite({ checks: [], mutations, now });
  return done!.versionstamp;
}

it("reports every commit's key changes alike to the driver that made it, to another driver on the schema, and from the log", async () => {
  const schema = freshSchema();
  const a = await postgresDriver(POSTGRES, { schema });
  const b = await postgresDriver(POSTGRES, { schema });
  const seenA = record(a);
  const seenB = record(b);
  const json = (data: string): RawValue => ({ encoding: "json", data });
  const k1 = key("p", "k1");

  await a.atomicWrite({
    checks: [],
    mutations: [{ ...set(k1, json('{ "x": 1 }')), info: { tags: ["t"], comment: "first" } }],
    now: T,
  });
  // Written by the other driver, which has the stored row's metadata but not its value.
  await write(b, T + 1, set(k1, { encoding: "bytes", data: Uint8Array.of(1, 2, 3) }));
  await write(
    a,
    T + 2,
    { type: "sum", key: key("q", "n"), operand: 5n, expiresAt: null },
    set(key("q", "v8"), encodeValue(new Map([[1, 2]]))),
    { type: "delete", key: key("p", "absent") },
  );
  // One group: three commits on one key, the first two leaving entries no row keeps.
  await Promise.all([
    write(a, T + 3, set(k1, json('"one"'))),
    write(a, T + 3, set(k1, json('"two"'))),
    write(a, T + 3, { type: "delete", key: k1 }),
  ]);
  await write(b, T + 4, set(key("p", "k5"), json("5"), T + 10));
  await write(a, T + 4, set(key("p", "k6"), json("6"), T + 5));
  await write(a, T + 10, set(key("p", "k6"), json("66")));
  expect(await a.deleteExpired(T + 20, 100)).toBe(1);
  expect(await a.purge(key("q"), T + 21)).toBe(2);
  await write(a, T + 22, {
    type: "set",
    key: key("s"),
    value: json("0"),
    expiresAt: null,
    versionstampSuffix: true,
  });

  await until(() => seenA.length === 12 && seenB.length === 12);
  const { changes, truncated, oldest } = await b.readChanges(ZERO, 100);
  expect({ truncated, oldest }).toEqual({ truncated: false, oldest: ZERO });
  expect(plain(seenB)).toEqual(plain(seenA));
  expect(plain(changes)).toEqual(plain(seenA));
  expect(plain((await a.readChanges(ZERO, 100)).changes)).toEqual(plain(seenA));

  const [first, second, third, ...rest] = plain(seenB);
  expect(first!.entries).toEqual([
    {
      key: hex(k1),
      type: "set",
      entry: {
        key: hex(k1),
        value: json('{ "x": 1 }'),
        versionstamp: first!.versionstamp,
        expiresAt: null,
        meta: expect.objectContaining({ version: 1, tags: ["t"], comment: "first" }),
      },
      previous: null,
    },
  ]);
  expect(second!.entries).toEqual([
    {
      key: hex(k1),
      type: "set",
      entry: expect.objectContaining({ value: { encoding: "bytes", data: "010203" } }),
      previous: { ...first!.entries![0]!.entry },
    },
  ]);
  expect(second!.entries![0]!.entry!.meta).toMatchObject({ version: 2, tags: ["t"] });
  // The delete of an absent key is written, but changes nothing a reader sees.
  expect(third!.keys).toHaveLength(3);
  expect(third!.entries!.map((c) => [c.type, c.entry?.value.encoding, c.previous])).toEqual([
    ["set", "u64", null],
    ["set", "v8", null],
  ]);
  const group = rest.slice(0, 3).map((e) => e.entries![0]!);
  expect(group.map((c) => [c.type, c.previous?.value.data, c.entry?.value.data ?? null])).toEqual([
    ["set", "010203", '"one"'],
    ["set", '"one"', '"two"'],
    ["delete", '"two"', null],
  ]);
  const [k5, k6, k6again, expired, purged, suffixed] = rest.slice(3);
  expect(k5!.entries![0]!.entry!.expiresAt).toBe(T + 10);
  expect(k6!.entries![0]!.previous).toBeNull();
  // The entry before had expired at the commit's time: the key was absent.
  expect(k6again!.entries![0]!.previous).toBeNull();
  expect(expired!.entries).toEqual([
    { key: hex(key("p", "k5")), type: "expire", entry: null, previous: k5!.entries![0]!.entry },
  ]);
  expect(purged!.entries!.map((c) => [c.type, c.previous?.value.encoding, c.entry])).toEqual([
    ["delete", "u64", null],
    ["delete", "v8", null],
  ]);
  expect(suffixed!.entries![0]!.entry!.value).toEqual(json("0"));
  await a.close();
  await b.close();
});

it("gives subscribers of two Kvs on one schema each other's commits with both entries", async () => {
  const url = `${POSTGRES}?schema=${freshSchema()}`;
  const a = await openKv(url);
  const b = await openKv(url);
  const events: Record<"a" | "b", KvEvent[]> = { a: [], b: [] };
  a.subscribe(["u", REST], (event) => events.a.push(event));
  b.subscribe(["u", REST], (event) => events.b.push(event));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await a.set(["u", 1], { name: "ada" }, { tags: ["x"] });
  await b.set(["u", 1], new KvU64(7n), { comment: "from b" });
  await a.delete(["u", 1]);
  await until(() => events.a.length === 3 && events.b.length === 3);
  const summary = (list: KvEvent[]) =>
    list.map((e) => [
      e.type,
      e.previous?.value ?? null,
      e.previous?.metadata?.version ?? null,
      e.entry?.value ?? null,
      e.entry?.metadata?.comment ?? null,
      e.entry?.metadata?.tags ?? null,
    ]);
  const expected = [
    ["set", null, null, { name: "ada" }, null, ["x"]],
    ["set", { name: "ada" }, 1, new KvU64(7n), "from b", ["x"]],
    ["delete", new KvU64(7n), 2, null, null, null],
  ];
  expect(summary(events.a)).toEqual(expected);
  expect(summary(events.b)).toEqual(expected);
  await a.close();
  await b.close();
});

it("keeps commits younger than changeLogAge in the log, however many follow them", async () => {
  const schema = freshSchema();
  const driver = await postgresDriver(POSTGRES, {
    schema,
    changeLogSize: 10,
    changeLogAge: 1000,
  });
  const first = await write(driver, T, set(key("a"), encodeValue(0)));
  for (let i = 1; i <= 40; i++) await write(driver, T + i, set(key("a"), encodeValue(i)));
  expect(await driver.readChanges(ZERO, 100)).toMatchObject({ truncated: false, oldest: ZERO });
  // Past the age, the next trim prunes up to changeLogSize commits back.
  for (let i = 0; i < 20; i++) await write(driver, T + 5000 + i, set(key("a"), encodeValue(i)));
  const page = await driver.readChanges(ZERO, 100);
  expect(page.truncated).toBe(true);
  expect(page.oldest > first).toBe(true);
  const resumed = await driver.readChanges(page.oldest, 100);
  expect(resumed.truncated).toBe(false);
  expect(resumed.changes[0]!.entries![0]!.previous).not.toBeNull();
  await driver.close();
});

/** The tables of schema version 2, whose change log held only versions and keys. */
function schemaTwo(s: string): string[] {
  return [
    `CREATE SCHEMA ${s}`,
    `CREATE TABLE ${s}.cellar_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    `INSERT INTO ${s}.cellar_migrations (version) VALUES (1), (2)`,
    `CREATE TABLE ${s}.cellar_meta (name text PRIMARY KEY, value bigint NOT NULL)`,
    `INSERT INTO ${s}.cellar_meta (name, value) VALUES ('version', 3), ('pruned', 0)`,
    `CREATE TABLE ${s}.cellar_kv (key bytea PRIMARY KEY, value_json json, value_bin bytea,
      encoding smallint NOT NULL, vs bigint NOT NULL, expires_at bigint, revision bigint NOT NULL,
      created_at bigint NOT NULL, updated_at bigint NOT NULL, tags text, modified_by text,
      comment text, data_hash text NOT NULL)`,
    `CREATE INDEX cellar_kv_expiry ON ${s}.cellar_kv (expires_at) WHERE expires_at IS NOT NULL`,
    `CREATE TABLE ${s}.cellar_history (key bytea NOT NULL, vs bigint NOT NULL, revision bigint NOT NULL,
      timestamp bigint NOT NULL, modified_by text, comment text, data_hash text, value_json json,
      value_bin bytea, encoding smallint, PRIMARY KEY (key, vs))`,
    `CREATE TABLE ${s}.cellar_changes (vs bigint NOT NULL, key bytea NOT NULL, PRIMARY KEY (vs, key))`,
    `CREATE TABLE ${s}.cellar_queue (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      queue bytea NOT NULL, id text NOT NULL, state smallint NOT NULL, priority bigint NOT NULL,
      available_at bigint NOT NULL, attempts integer NOT NULL, backoff jsonb NOT NULL,
      undelivered jsonb NOT NULL, value_json json, value_bin bytea, encoding smallint NOT NULL,
      token text, locked_until bigint, enqueued_at bigint NOT NULL, failed_at bigint, error text)`,
    `CREATE UNIQUE INDEX cellar_queue_id ON ${s}.cellar_queue (queue, id)`,
    `CREATE INDEX cellar_queue_ready ON ${s}.cellar_queue (queue, priority DESC, seq) WHERE state = 0`,
    `CREATE INDEX cellar_queue_lease ON ${s}.cellar_queue (queue, locked_until) WHERE state = 1`,
    `CREATE INDEX cellar_queue_dead ON ${s}.cellar_queue (queue, failed_at, seq) WHERE state = 2`,
    `CREATE UNIQUE INDEX cellar_queue_token ON ${s}.cellar_queue (token) WHERE token IS NOT NULL`,
    `CREATE TABLE ${s}.cellar_queue_dedup (queue bytea NOT NULL, key text NOT NULL, id text NOT NULL,
      until bigint NOT NULL, PRIMARY KEY (queue, key))`,
    `CREATE INDEX cellar_queue_dedup_until ON ${s}.cellar_queue_dedup (until)`,
    `CREATE TABLE ${s}.cellar_listeners (origin text PRIMARY KEY, pid integer NOT NULL)`,
  ];
}

it("upgrades a schema-2 database: its data stays, its log restarts at the head", async () => {
  const schema = freshSchema();
  const s = `"${schema}"`;
  const old = key("old");
  const admin = new pg.Client({ connectionString: POSTGRES });
  await admin.connect();
  try {
    for (const sql of schemaTwo(s)) await admin.query(sql);
    await admin.query(
      `INSERT INTO ${s}.cellar_kv (key, value_json, encoding, vs, revision, created_at, updated_at, tags, data_hash)
      VALUES ($1, '{"old": true}', 4, 3, 1, $2, $2, '["legacy"]', 'hash')`,
      [old, T],
    );
    await admin.query(`INSERT INTO ${s}.cellar_changes (vs, key) VALUES (1, $1), (3, $1)`, [old]);
  } finally {
    await admin.end();
  }

  const driver = await postgresDriver(POSTGRES, { schema });
  const seen = record(driver);
  // The log restarts at the version the database had; registering the feed moved it on.
  const restart = formatVersionstamp(3);
  expect(await driver.readChanges(ZERO, 10)).toEqual({
    changes: [],
    truncated: true,
    head: formatVersionstamp(4),
    oldest: restart,
  });
  const [read] = await driver.snapshotRead(
    [{ start: old, end: Uint8Array.of(...old, 0), limit: 1, reverse: false }],
    { now: T },
  );
  expect(read?.[0]?.value).toEqual({ encoding: "json", data: '{"old": true}' });

  const versionstamp = await write(driver, T + 1, set(old, { encoding: "json", data: "1" }));
  const previous = {
    key: old,
    value: { encoding: "json", data: '{"old": true}' },
    versionstamp: restart,
    expiresAt: null,
    meta: {
      version: 1,
      createdAt: T,
      updatedAt: T,
      tags: ["legacy"],
      modifiedBy: null,
      comment: null,
      dataHash: "hash",
    },
  };
  await until(() => seen.length === 1);
  expect(seen[0]!.entries![0]!.previous).toEqual(previous);
  const page = await driver.readChanges(restart, 10);
  expect(page.truncated).toBe(false);
  expect(plain(page.changes)).toEqual(plain(seen));
  expect(page.changes[0]!.versionstamp).toBe(versionstamp);
  await driver.close();
  // Opening it again finds it current.
  const again = await postgresDriver(POSTGRES, { schema });
  expect((await again.readChanges(restart, 10)).changes).toHaveLength(1);
  await again.close();
});
