/**
 * Mirrors both ways against the real PostgreSQL: rows inserted, updated and deleted by another
 * service reach `kv.get` and `kv.subscribe` listeners as ordinary commits; the round trip
 * settles without a loop; changes made while Cellar is down wait in the inbox; rows that cannot
 * be read are skipped and reported; a table's existing rows are imported the first time.
 */
import { describe, expect, it } from "vitest";
import { type KvEvent, mirror, openKv, REST } from "../../src/index.js";
import { freshSchema, recordingLogger, rows, STORES, sql, urlOf, values } from "./helpers.js";

/** Counts the updates of `schema.table`'s rows, by a trigger of the test's own. */
async function countUpdates(schema: string, table: string): Promise<() => Promise<number>> {
  const db = await sql();
  await db.query(`CREATE TABLE "${schema}".updates (n integer NOT NULL)`);
  await db.query(`INSERT INTO "${schema}".updates VALUES (0)`);
  await db.query(`CREATE FUNCTION "${schema}".count_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN UPDATE "${schema}".updates SET n = n + 1; RETURN NULL; END $$`);
  await db.query(`CREATE TRIGGER count_update AFTER UPDATE ON "${schema}"."${table}"
    FOR EACH ROW EXECUTE FUNCTION "${schema}".count_update()`);
  return async () => (await db.query(`SELECT n FROM "${schema}".updates`)).rows[0].n as number;
}

describe.each(Object.entries(STORES))("the way in, %s", (_, open) => {
  it("applies rows inserted, updated and deleted in the table as Cellar commits", async () => {
    const kv = await open();
    const schema = freshSchema("in");
    await kv.set(["users", "ada"], { name: "Ada" });
    await using m = mirror(kv, {
      prefix: ["users"],
      to: urlOf(schema),
      table: "users",
      direction: "both",
    });
    await m.flush();
    const events: KvEvent[] = [];
    const stop = kv.subscribe(["users", REST], (event) => events.push(event));
    const db = await sql();
    const t = `"${schema}".users`;
    await db.query(
      `INSERT INTO ${t} (key, value) VALUES ('users/bob', '{"name":"Bob","n":{"$bigint":"7"}}')`,
    );
    await db.query(`UPDATE ${t} SET value = '{"name":"Ada L."}' WHERE key = 'users/ada'`);
    await db.query(`INSERT INTO ${t} (key, value) VALUES ('users/~n:1', '"one"')`);
    await db.query(`DELETE FROM ${t} WHERE key = 'users/~n:1'`);
    await m.flush();
    stop();

    expect((await kv.get(["users", "bob"])).value).toEqual({ name: "Bob", n: 7n });
    expect((await kv.get(["users", "ada"])).value).toEqual({ name: "Ada L." });
    expect((await kv.get(["users", 1])).versionstamp).toBeNull();
    const byKey = Object.fromEntries(events.map((e) => [JSON.stringify(e.key), e]));
    expect(byKey['["users","bob"]']).toMatchObject({ type: "set", previous: null });
    expect(byKey['["users","ada"]']!.previous?.value).toEqual({ name: "Ada" });
    expect(byKey['["users","bob"]']!.entry?.metadata?.modifiedBy).toBe(`postgres:${schema}.users`);
    const ada = await kv.get(["users", "ada"], { metadata: true });
    expect(ada.metadata?.modifiedBy).toBe(`postgres:${schema}.users`);

    await m.flush();
    const table = await rows(schema, "users");
    expect(table.map((row) => row.key)).toEqual(["users/ada", "users/bob"]);
    // Written back with the versionstamps of the commits that applied them.
    expect(table.find((row) => row.key === "users/ada")!.versionstamp).toBe(ada.versionstamp);
    expect(table.find((row) => row.key === "users/bob")!.key_parts).toEqual(["users", "bob"]);
    // The insert and delete of users/1 are one change or two, as the inbox was read.
    expect(m.status().changesApplied).toBeGreaterThanOrEqual(3);
    expect(m.status()).toMatchObject({ skipped: 0, errors: 0 });
    await kv.close();
  });

  it("settles a round trip without a loop", async () => {
    const kv = await open();
    const schema = freshSchema("loop");
    await using m = mirror(kv, { prefix: ["p"], to: urlOf(schema), table: "p", direction: "both" });
    await m.flush();
    const updates = await countUpdates(schema, "p");
    let commits = 0;
    const stop = kv.subscribe(["p", REST], () => commits++);
    const db = await sql();

    // From PostgreSQL: one commit in Cellar, one harmless write back, then nothing.
    await db.query(`INSERT INTO "${schema}".p (key, value) VALUES ('p/a', '1')`);
    await m.flush();
    await m.flush();
    expect(commits).toBe(1);
    expect(await updates()).toBe(1);
    expect((await kv.history(["p", "a"])).length).toBe(1);

    // From Cellar: one row update, nothing captured.
    await kv.set(["p", "a"], 2);
    await m.flush();
    await m.flush();
    expect(commits).toBe(2);
    expect(await updates()).toBe(2);
    const inbox = await db.query(`SELECT count(*)::int AS n FROM "${schema}".cellar_mirror_inbox`);
    expect(inbox.rows[0].n).toBe(0);
    expect(m.status().changesApplied).toBe(1);
    expect(await values(schema, "p")).toEqual({ "p/a": 2 });
    stop();
    await kv.close();
  });
});

describe("the way in, more", () => {
  it("applies what changed while Cellar was down, from the inbox", async () => {
    const kv = await openKv();
    const schema = freshSchema("down");
    const options = { prefix: ["d"], to: urlOf(schema), table: "d", direction: "both" } as const;
    const first = mirror(kv, options);
    await kv.set(["d", "kept"], "kept");
    await first.flush();
    await first.close();
    const db = await sql();
    for (let i = 0; i < 25; i++)
      await db.query(`INSERT INTO "${schema}".d (key, value) VALUES ($1, $2)`, [
        `d/~n:${i}`,
        String(i),
      ]);
    await db.query(`UPDATE "${schema}".d SET value = '"changed"' WHERE key = 'd/kept'`);

    const again = mirror(kv, { ...options, batchSize: 10 });
    await again.flush();
    expect((await kv.get(["d", "kept"])).value).toBe("changed");
    expect(await kv.count({ prefix: ["d"] })).toBe(26);
    expect(again.status().inbox).toBeGreaterThanOrEqual(26);
    await again.close();
    await kv.close();
  });

  it("skips and reports rows it cannot read, and goes on", async () => {
    const kv = await openKv();
    const schema = freshSchema("bad");
    const { lines, logger } = recordingLogger();
    await using m = mirror(kv, {
      prefix: ["b"],
      to: urlOf(schema),
      table: "b",
      direction: "both",
      logger,
    });
    await m.flush();
    const db = await sql();
    const insert = (key: string, value: string | null) =>
      db.query(`INSERT INTO "${schema}".b (key, value) VALUES ($1, $2)`, [key, value]);
    await insert("b/tagged", '{"$bigint":"not a number"}');
    await insert("b/~n:01", "1");
    await insert("elsewhere/x", "1");
    await insert("b/~q:1", "1");
    await insert("b/null", null);
    await insert("b/good", '"good"');
    await m.flush();
    expect((await kv.get(["b", "good"])).value).toBe("good");
    expect(await kv.count({ prefix: ["b"] })).toBe(1);
    expect(await kv.count({ prefix: ["elsewhere"] })).toBe(0);
    expect(m.status().skipped).toBe(5);
    const messages = lines.filter((l) => l.level === "warn").map((l) => l.message);
    expect(messages.join("\n")).toMatch(/\$bigint must be a decimal integer string/);
    expect(messages.join("\n")).toMatch(/not a canonical key path; write "b\/~n:1"/);
    expect(messages.join("\n")).toMatch(/not under the mirror's prefix/);
    expect(messages.join("\n")).toMatch(/value column is NULL/);
    // The rows stay as they were written.
    expect((await rows(schema, "b")).length).toBe(6);
  });

  it("imports the rows a table held before its first mirror both ways", async () => {
    const kv = await openKv();
    const schema = freshSchema("import");
    const db = await sql();
    await db.query(`CREATE SCHEMA "${schema}"`);
    await db.query(
      `CREATE TABLE "${schema}".legacy (key text PRIMARY KEY, value jsonb, note text)`,
    );
    await db.query(
      `INSERT INTO "${schema}".legacy VALUES ('l/a', '"from postgres"', 'x'), ('l/b', '2', 'y')`,
    );
    await kv.set(["l", "b"], "from cellar");
    await kv.set(["l", "c"], "only in cellar");
    await using m = mirror(kv, {
      prefix: ["l"],
      to: urlOf(schema),
      table: "legacy",
      direction: "both",
    });
    await m.flush();
    expect((await kv.get(["l", "a"])).value).toBe("from postgres");
    expect((await kv.get(["l", "b"])).value).toBe("from cellar");
    expect(await values(schema, "legacy")).toEqual({
      "l/a": "from postgres",
      "l/b": "from cellar",
      "l/c": "only in cellar",
    });
    // Columns of the table's own are left alone.
    expect((await rows(schema, "legacy")).map((row) => row.note)).toEqual(["x", "y", null]);
  });

  it("reads values with fromRow, and honours expires_at", async () => {
    const kv = await openKv();
    const schema = freshSchema("fromrow");
    await using m = mirror<{ name: string; age: number }>(kv, {
      prefix: ["people"],
      to: urlOf(schema),
      table: "people",
      direction: "both",
      value: false,
      payload: { name: { type: "text" }, age: { type: "integer" } },
      fromRow: (row) => ({ name: row.name as string, age: row.age as number }),
    });
    await m.flush();
    const db = await sql();
    const later = new Date(Date.now() + 3_600_000);
    await db.query(
      `INSERT INTO "${schema}".people (key, name, age, expires_at) VALUES ('people/ada', 'Ada', 36, $1), ('people/old', 'Old', 1, now() - interval '1 hour')`,
      [later],
    );
    await m.flush();
    const ada = await kv.get(["people", "ada"], { metadata: true });
    expect(ada.value).toEqual({ name: "Ada", age: 36 });
    expect(ada.metadata?.expiresAt).toBe(later.getTime());
    expect((await kv.get(["people", "old"])).versionstamp).toBeNull();
  });

  it("converges when Cellar and PostgreSQL write one key at once", async () => {
    const kv = await openKv();
    const schema = freshSchema("race");
    await using m = mirror(kv, { prefix: ["r"], to: urlOf(schema), table: "r", direction: "both" });
    await m.flush();
    const db = await sql();
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      writes.push(kv.set(["r", i % 4], `cellar ${i}`));
      writes.push(
        db.query(
          `INSERT INTO "${schema}".r (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
          [`r/~n:${i % 4}`, JSON.stringify(`postgres ${i}`)],
        ),
      );
    }
    await Promise.all(writes);
    await m.flush();
    await m.flush();
    const inCellar: Record<string, unknown> = {};
    for await (const entry of kv.list({ prefix: ["r"] }))
      inCellar[`r/~n:${entry.key[1]}`] = entry.value;
    expect(await values(schema, "r")).toEqual(inCellar);
  });
});
