/**
 * Mirrors, the way out, on a memory and a SQLite database against the real PostgreSQL: what the
 * table holds after sets, deletes, expiry and atomic commits; payload columns; replay from an
 * older checkpoint; a checkpoint the change log no longer holds; a backlog larger than the
 * buffer; the metrics.
 */
import { describe, expect, it } from "vitest";
import { type Kv, KvU64, mirror, openKv } from "../../src/index.js";
import { metricsRegistry, withMetrics } from "../../src/observe/index.js";
import {
  freshSchema,
  recordingLogger,
  rows,
  STORES,
  sql,
  until,
  urlOf,
  values,
} from "./helpers.js";

/** The table as `kv.list` says it should be: key path → tagged JSON value. */
async function expected(kv: Kv, prefix: string[]): Promise<Record<string, unknown>> {
  const { keyToPath, valueToJson } = await import("../../src/wire/json.js");
  const out: Record<string, unknown> = {};
  for await (const entry of kv.list({ prefix }))
    out[keyToPath(entry.key)] = valueToJson(entry.value);
  return out;
}

describe.each(Object.entries(STORES))("the way out, %s", (_, open) => {
  it("keeps one row per key under the prefix: sets, deletes, atomic commits", async () => {
    const kv = await open();
    const schema = freshSchema("basic");
    await kv.set(["users", "before"], { name: "there before the mirror" });
    await kv.set(["other", "x"], 1);
    await using users = mirror(kv, { prefix: ["users"], to: urlOf(schema), table: "users" });
    await kv.set(["users", "ada"], { name: "Ada", born: 1815n, langs: new Set(["en"]) });
    await kv.set(["users", 7, true], "seven");
    const commit = await kv
      .atomic()
      .set(["users", "bob"], { name: "Bob" })
      .set(["users", "cy"], { name: "Cy" })
      .delete(["users", "before"])
      .set(["other", "y"], 2)
      .commit();
    await kv.delete(["users", "cy"]);
    await users.flush();

    const table = await rows(schema, "users");
    expect(table.map((row) => row.key)).toEqual(["users/ada", "users/bob", "users/~n:7/~t"]);
    const ada = table[0]!;
    expect(ada.key_parts).toEqual(["users", "ada"]);
    expect(ada.value).toEqual({ name: "Ada", born: { $bigint: "1815" }, langs: { $set: ["en"] } });
    expect(ada.updated_at).toBeInstanceOf(Date);
    expect(ada.expires_at).toBeNull();
    expect(table[1]!.versionstamp).toBe(commit.ok && commit.versionstamp);
    expect(table[2]!.key_parts).toEqual(["users", 7, true]);
    expect(await values(schema, "users")).toEqual(await expected(kv, ["users"]));
    const status = users.status();
    expect(status).toMatchObject({ state: "running", connected: true, errors: 0, resyncs: 1 });
    expect(status.lastResync?.reason).toBe("first start");
    expect(status.checkpoint).toBe(await kv.currentVersionstamp());
    expect(status.lag).toEqual({ versionstamps: 0, ms: 0 });
    await kv.close();
  });

  it("deletes the row of an entry that expires", async () => {
    let now = Date.now();
    const kv = await open({ sweepInterval: 0, clock: () => now });
    const schema = freshSchema("expiry");
    await using m = mirror(kv, { prefix: ["s"], to: urlOf(schema), table: "sessions" });
    await kv.set(["s", "short"], "gone soon", { expireIn: 1000 });
    await kv.set(["s", "long"], "stays", { expireIn: 3_600_000 });
    await m.flush();
    const before = await rows(schema, "sessions");
    expect(before.map((row) => row.key)).toEqual(["s/long", "s/short"]);
    expect((before[1]!.expires_at as Date).getTime()).toBe(now + 1000);
    now += 2000;
    expect(await kv.sweepExpired()).toBe(1);
    await m.flush();
    expect((await rows(schema, "sessions")).map((row) => row.key)).toEqual(["s/long"]);
    await kv.close();
  });

  it("forms payload columns from each entry, and reports a cell it cannot form", async () => {
    const kv = await open();
    const schema = freshSchema("payload");
    const { lines, logger } = recordingLogger();
    await using m = mirror<{ name: string; age?: unknown; tags?: string[] }>(kv, {
      prefix: ["people"],
      to: urlOf(schema),
      table: "people",
      logger,
      payload: {
        name: { type: "text" },
        age: { type: "integer" },
        tag_count: { type: "bigint", from: (entry) => entry.value.tags?.length ?? 0 },
        seen: { type: "timestamptz", from: (entry) => entry.metadata?.updatedAt },
        version: { type: "integer", from: (entry) => entry.metadata?.version },
        summary: (entry) => ({ key: entry.key, n: new KvU64(5n) }),
      },
    });
    await kv.set(["people", "ada"], { name: "Ada", age: 36, tags: ["math", "poetry"] });
    await kv.set(["people", "ada"], { name: "Ada", age: 37, tags: ["math"] });
    await kv.set(["people", "bob"], { name: "Bob", age: "unknown" });
    await kv.set(["people", "odd"], 42);
    await m.flush();
    const [ada, bob, odd] = await rows(schema, "people");
    expect(ada).toMatchObject({ name: "Ada", age: 37, tag_count: "1", version: 2 });
    expect(ada!.summary).toEqual({ key: ["people", "ada"], n: { $u64: "5" } });
    expect(ada!.seen).toBeInstanceOf(Date);
    expect(bob).toMatchObject({ name: "Bob", age: null, value: { name: "Bob", age: "unknown" } });
    expect(odd).toMatchObject({ name: null, age: null, tag_count: "0", value: 42 });
    expect(m.status().skipped).toBe(1);
    expect(lines.some((l) => l.level === "warn" && /people\/bob: column age/.test(l.message))).toBe(
      true,
    );
    await kv.close();
  });

  it("writes the same rows again when replayed from an older checkpoint", async () => {
    const kv = await open();
    const schema = freshSchema("replay");
    const options = { prefix: ["r"], to: urlOf(schema), table: "r" } as const;
    const first = mirror(kv, options);
    await first.flush();
    const start = first.status().checkpoint!;
    for (let i = 0; i < 20; i++) await kv.set(["r", i % 7], { i });
    await kv.atomic().delete(["r", 3]).set(["r", "x"], "x").commit();
    await first.flush();
    await first.close();
    const written = await rows(schema, "r");

    const db = await sql();
    await db.query(`UPDATE "${schema}".cellar_mirror_state SET out_versionstamp = $1`, [start]);
    const again = mirror(kv, options);
    await again.flush();
    expect(again.status().resyncs).toBe(0);
    expect(again.status().rowsWritten).toBeGreaterThan(0);
    expect(await rows(schema, "r")).toEqual(written);
    await again.close();
    await kv.close();
  });

  it("copies the prefix whole when the change log no longer holds its checkpoint", async () => {
    const kv = await open({ changeLog: { size: 5 } });
    const schema = freshSchema("compacted");
    const { lines, logger } = recordingLogger();
    const options = { prefix: ["c"], to: urlOf(schema), table: "c", logger } as const;
    const first = mirror(kv, options);
    for (let i = 0; i < 5; i++) await kv.set(["c", i], i);
    await first.flush();
    await first.close();
    // While no mirror runs: far more commits than the log keeps, deletes among them.
    await kv.delete(["c", 0]);
    for (let i = 0; i < 30; i++) await kv.set(["c", 10 + (i % 10)], i);
    await kv.delete(["c", 11]);
    const db = await sql();
    await db.query(
      `INSERT INTO "${schema}".c (key, versionstamp, value) VALUES ('c/~n:99', $1, '1')`,
      ["00000000000000010000"],
    );

    const again = mirror(kv, options);
    await again.flush();
    expect(again.status().lastResync?.reason).toBe("COMPACTED");
    expect(await values(schema, "c")).toEqual(await expected(kv, ["c"]));
    expect(lines.some((l) => /resynchronised \(COMPACTED\)/.test(l.message))).toBe(true);
    // And it follows the feed again afterwards.
    await kv.set(["c", "after"], "after");
    await again.flush();
    expect((await values(schema, "c"))["c/after"]).toBe("after");
    await again.close();
    await kv.close();
  });

  it("catches up a backlog larger than its buffer, a commit at a time", async () => {
    const kv = await open();
    const schema = freshSchema("backlog");
    await using m = mirror(kv, { prefix: ["b"], to: urlOf(schema), table: "b", batchSize: 10 });
    await m.flush();
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) writes.push(kv.set(["b", i % 250], { i }));
    writes.push(
      kv.atomic().set(["b", "big", 1], 1).set(["b", "big", 2], 2).set(["b", "big", 3], 3).commit(),
    );
    await Promise.all(writes);
    await m.flush();
    expect(await values(schema, "b")).toEqual(await expected(kv, ["b"]));
    await kv.close();
  });
});

describe("the way out, views and layouts", () => {
  it("mirrors one namespace of a database, keys relative to it", async () => {
    const kv = await openKv();
    const schema = freshSchema("namespace");
    const tenant = kv.namespace("tenant-a");
    await using m = mirror(tenant, { prefix: [], to: urlOf(schema), table: "tenant_a" });
    await tenant.set(["doc", 1], "one");
    await kv.set(["doc", 2], "not this namespace");
    await kv.namespace("tenant-b").set(["doc", 3], "nor this one");
    await m.flush();
    expect(await values(schema, "tenant_a")).toEqual({ "doc/~n:1": "one" });
    await kv.close();
  });

  it("leaves the value column out when asked, and keeps two mirrors of one schema apart", async () => {
    const kv = await openKv();
    const schema = freshSchema("layouts");
    await using names = mirror<{ name: string }>(kv, {
      prefix: ["u"],
      to: urlOf(schema),
      table: "names",
      value: false,
      payload: { name: { type: "text" } },
    });
    await using all = mirror(kv, { prefix: [], to: urlOf(schema), table: "everything" });
    await kv.set(["u", "a"], { name: "A" });
    await kv.set(["v"], 1);
    await names.flush();
    await all.flush();
    const named = await rows(schema, "names");
    expect(named).toHaveLength(1);
    expect(named[0]).not.toHaveProperty("value");
    expect(named[0]).toMatchObject({ key: "u/a", name: "A" });
    expect(Object.keys(await values(schema, "everything"))).toEqual(["u/a", "v"]);
    await kv.close();
  });

  it("reports its lag and counts in the metrics of its database", async () => {
    const kv = withMetrics(await openKv(), { defaultMetrics: false, storage: false });
    const schema = freshSchema("metrics");
    await using m = mirror(kv, { prefix: ["m"], to: urlOf(schema), table: "metered" });
    await kv.set(["m", 1], 1);
    await m.flush();
    const text = await metricsRegistry(kv)!.metrics();
    const table = `${schema}.metered`;
    expect(text).toContain(`cellar_mirror_lag_versionstamps{table="${table}",direction="out"} 0`);
    expect(text).toContain(`cellar_mirror_connected{table="${table}",direction="out"} 1`);
    expect(text).toMatch(
      new RegExp(`cellar_mirror_rows_written_total\\{table="${table}",direction="out"\\} [1-9]`),
    );
    expect(text).toContain(`cellar_mirror_resyncs_total{table="${table}",direction="out"} 1`);
    await m.close();
    expect(await metricsRegistry(kv)!.metrics()).not.toContain(table);
    await kv.close();
  });

  it("copies the prefix whole for a database behind its checkpoint, and when its table is dropped", async () => {
    const schema = freshSchema("behind");
    const options = { prefix: ["k"], to: urlOf(schema), table: "k" } as const;
    const old = await openKv();
    for (let i = 0; i < 10; i++) await old.set(["k", i], i);
    const first = mirror(old, options);
    await first.flush();
    await first.close();
    await old.close();

    const fresh = await openKv();
    await fresh.set(["k", "new"], "new");
    const second = mirror(fresh, options);
    await second.flush();
    expect(second.status().lastResync?.reason).toBe("database behind checkpoint");
    expect(await values(schema, "k")).toEqual({ "k/new": "new" });
    await second.close();

    await (await sql()).query(`DROP TABLE "${schema}".k`);
    const third = mirror(fresh, options);
    await third.flush();
    expect(third.status().lastResync?.reason).toBe("table created");
    expect(await values(schema, "k")).toEqual({ "k/new": "new" });
    await third.close();
    await fresh.close();
  });

  it("copies the new prefix whole when a table is mirrored from another prefix", async () => {
    const kv = await openKv();
    const schema = freshSchema("moved");
    await kv.set(["a", 1], "a");
    await kv.set(["b", 1], "b");
    const first = mirror(kv, { prefix: ["a"], to: urlOf(schema), table: "t" });
    await first.flush();
    await first.close();
    const second = mirror(kv, { prefix: ["b"], to: urlOf(schema), table: "t" });
    await second.flush();
    expect(second.status().lastResync?.reason).toBe("prefix changed");
    expect(await values(schema, "t")).toEqual({ "b/~n:1": "b" });
    await second.close();
    await kv.close();
  });

  it("closes with its database", async () => {
    const kv = await openKv();
    const m = mirror(kv, { prefix: ["z"], to: urlOf(freshSchema("closing")), table: "z" });
    await m.flush();
    await kv.close();
    await until(() => m.status().state === "closed", "the mirror to close");
    await expect(m.flush()).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });
});
