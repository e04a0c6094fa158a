/**
 * Mirrors given bad input, or a PostgreSQL that is not there: options refused at once with
 * `INVALID_ARGUMENT` (no name ever reaches SQL unchecked), outages retried with backoff and
 * reported in the status without losing the checkpoint, a table it cannot use reported until
 * it can.
 */
import { describe, expect, it } from "vitest";
import { KvError, type MirrorOptions, mirror, openKv } from "../../src/index.js";
import { valueFromJson } from "../../src/wire/json.js";
import {
  freshSchema,
  POSTGRES,
  recordingLogger,
  rows,
  sql,
  until,
  urlOf,
  values,
} from "./helpers.js";

describe("mirror options", () => {
  const base = { prefix: ["users"], to: POSTGRES, table: "users" };
  const refused: [string, Record<string, unknown>, RegExp][] = [
    ["a table name with SQL in it", { table: 'users"; DROP TABLE x; --' }, /mirror table must be/],
    ["a table name with a space", { table: "my users" }, /mirror table must be/],
    ["a table name too long", { table: "t".repeat(64) }, /1–63 letters/],
    ["a table name of the mirror's own", { table: "cellar_mirror_state" }, /mirror's own/],
    ["an empty table name", { table: "" }, /mirror table must be/],
    ["a schema with a quote", { schema: 'a"b' }, /mirror schema must be/],
    ["a schema in the URL with a dot", { to: `${POSTGRES}?schema=a.b` }, /mirror schema must be/],
    ["a URL of another scheme", { to: "mysql://db/app" }, /PostgreSQL URL/],
    ["no URL", { to: undefined }, /PostgreSQL URL/],
    ["a prefix that is not a key", { prefix: "users" }, /prefix must be a key/],
    ["a key part of a bad type", { prefix: [{}] }, /key part/],
    ["a payload column named like SQL", { payload: { "a-b": () => 1 } }, /payload column must be/],
    ["a payload column of the table's own", { payload: { key: () => 1 } }, /table's own columns/],
    ["an unknown column type", { payload: { a: { type: "text; DROP" } } }, /type one of/],
    ["a direction of neither kind", { direction: "in" }, /"out" or "both"/],
    [
      "both ways without a value to read",
      { direction: "both", value: false, payload: { a: () => 1 } },
      /fromRow/,
    ],
    ["no columns at all", { value: false }, /needs payload columns/],
    ["a batch size of zero", { batchSize: 0 }, /batchSize must be an integer/],
    ["an unknown option", { tabel: "x" }, /no option "tabel"/],
  ];

  it.each(refused)("refuses %s", async (_, change, message) => {
    const kv = await openKv();
    const options = { ...base, ...change } as unknown as MirrorOptions;
    let error: unknown;
    try {
      mirror(kv, options);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(KvError);
    const code =
      "prefix" in change && Array.isArray(change.prefix) ? "INVALID_KEY" : "INVALID_ARGUMENT";
    expect((error as KvError).code).toBe(code);
    expect((error as Error).message).toMatch(message);
    await kv.close();
  });

  it("refuses a closed database", async () => {
    const kv = await openKv();
    await kv.close();
    expect(() => mirror(kv, base)).toThrow(expect.objectContaining({ code: "DATABASE_CLOSED" }));
  });
});

describe("a PostgreSQL that fails", () => {
  it("keeps trying while PostgreSQL cannot be reached, and says so", async () => {
    const kv = await openKv();
    const { lines, logger } = recordingLogger();
    const m = mirror(kv, {
      prefix: ["a"],
      to: "postgres://postgres@127.0.0.1:1/test",
      table: "a",
      retry: { initialMs: 10, maxMs: 20 },
      logger,
    });
    await kv.set(["a", 1], 1);
    await until(() => m.status().errors >= 3, "three failed attempts");
    const status = m.status();
    expect(status).toMatchObject({ state: "retrying", connected: false, checkpoint: null });
    expect(status.lastError?.code).toBe("UNAVAILABLE");
    expect(status.lastError?.message).toMatch(/ECONNREFUSED/);
    expect(lines.some((l) => l.level === "error")).toBe(true);
    await expect(m.flush({ timeoutMs: 50 })).rejects.toMatchObject({
      code: "UNAVAILABLE",
      message: expect.stringMatching(/did not catch up within 50 ms; last error: .*ECONNREFUSED/),
    });
    await m.close();
    expect(m.status().state).toBe("closed");
    await kv.close();
  });

  it("recovers when its connections are terminated, without losing a change", async () => {
    const kv = await openKv();
    const schema = freshSchema("terminated");
    const app = `mirror_test_${schema.slice(-12)}`;
    const to = `${urlOf(schema)}&application_name=${app}`;
    const m = mirror(kv, {
      prefix: ["t"],
      to,
      table: "t",
      direction: "both",
      retry: { initialMs: 10, maxMs: 50 },
      pollInterval: 100,
      logger: recordingLogger().logger,
    });
    await m.flush();
    const db = await sql();
    const terminate = () =>
      db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        [app],
      );
    for (let round = 0; round < 5; round++) {
      const writes = [];
      for (let i = 0; i < 20; i++) writes.push(kv.set(["t", round, i], { round, i }));
      await terminate();
      await Promise.all(writes);
      await db.query(`INSERT INTO "${schema}".t (key, value) VALUES ($1, '"outside"')`, [
        `t/~n:${round}/outside`,
      ]);
    }
    await m.flush();
    const table = await values(schema, "t");
    expect(Object.keys(table)).toHaveLength(105);
    for (let round = 0; round < 5; round++) {
      expect((await kv.get(["t", round, "outside"])).value).toBe("outside");
      expect(table[`t/~n:${round}/~n:19`]).toEqual({ round, i: 19 });
    }
    expect(m.status().connected).toBe(true);
    // The connection that listens was among those terminated: at least that was noticed.
    expect(m.status().errors).toBeGreaterThan(0);
    await until(() => m.status().state === "running", "the mirror running again");
    await m.close();
    await kv.close();
  });

  it("reports a table it cannot use until it can", async () => {
    const kv = await openKv();
    const schema = freshSchema("unusable");
    const db = await sql();
    await db.query(`CREATE SCHEMA "${schema}"`);
    await db.query(`CREATE TABLE "${schema}".taken (id integer PRIMARY KEY, key integer)`);
    const m = mirror(kv, {
      prefix: ["u"],
      to: urlOf(schema),
      table: "taken",
      retry: { initialMs: 10, maxMs: 20 },
      logger: recordingLogger().logger,
    });
    await kv.set(["u", 1], 1);
    await until(() => m.status().errors >= 2, "the table refused");
    expect(m.status().lastError?.message).toMatch(/without a unique text column "key"/);
    await db.query(`DROP TABLE "${schema}".taken`);
    await m.flush();
    expect(await values(schema, "taken")).toEqual({ "u/~n:1": 1 });
    await m.close();
    await kv.close();
  });

  it("skips a row PostgreSQL refuses, and writes the rest", async () => {
    const kv = await openKv();
    const schema = freshSchema("refused");
    const { lines, logger } = recordingLogger();
    await using m = mirror(kv, {
      prefix: ["r"],
      to: urlOf(schema),
      table: "r",
      logger,
      payload: { id: { type: "uuid" }, at: { type: "timestamptz" } },
    });
    await m.flush();
    const id = "6f1c2d3e-0000-4000-8000-000000000001";
    await kv
      .atomic()
      .set(["r", "good"], { id, at: "2026-01-02T03:04:05Z" })
      .set(["r", "bad"], { id, at: "not a date" })
      .set(["r", "nul"], { id: "a\u0000b", text: "a\u0000b" })
      .commit();
    await m.flush();
    const table = await rows(schema, "r");
    expect(table.map((row) => row.key)).toEqual(["r/good", "r/nul"]);
    expect(table[0]).toMatchObject({ id, at: new Date("2026-01-02T03:04:05Z") });
    // No NUL in a uuid: that cell is NULL; the value column keeps it, in V8's form.
    expect(table[1]).toMatchObject({ id: null, value: { $v8: expect.any(String) } });
    expect(m.status().skipped).toBe(2);
    const messages = lines.map((l) => l.message).join("\n");
    expect(messages).toMatch(/r\/bad: .*invalid input syntax/);
    expect(messages).toMatch(/r\/nul: column id: .* cannot be stored as uuid/);
    expect(valueFromJson(table[1]!.value)).toEqual({ id: "a\u0000b", text: "a\u0000b" });
    await kv.close();
  });
});
