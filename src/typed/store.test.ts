import { type } from "arktype";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import { getSchema, type InvalidValueReport, storeSchemas, ValidationError } from "./schemas.js";
import { defineStore } from "./store.js";

let kv: Kv;
beforeEach(async () => {
  kv = await openKv();
});
afterEach(() => kv.close());

const libraries = {
  zod: () => z.object({ theme: z.enum(["light", "dark"]), font_size: z.number().int().min(8) }),
  valibot: () =>
    v.object({
      theme: v.picklist(["light", "dark"]),
      font_size: v.pipe(v.number(), v.integer(), v.minValue(8)),
    }),
  arktype: () => type({ theme: "'light' | 'dark'", font_size: "number.integer >= 8" }),
};

describe.each(Object.entries(libraries))("a store validated by %s", (_, schema) => {
  it("writes, reads, lists and deletes entries", async () => {
    const prefs = defineStore(kv, "user_prefs", schema());
    const written = await prefs.set("ada", { theme: "dark", font_size: 14 });
    expect(written).toEqual({
      id: "ada",
      value: { theme: "dark", font_size: 14 },
      versionstamp: expect.any(String),
    });
    expect(await prefs.get("ada")).toEqual({ theme: "dark", font_size: 14 });
    expect(await prefs.getEntry("ada")).toEqual(written);
    expect(await prefs.get("bob")).toBeNull();
    await prefs.delete("ada");
    expect(await prefs.get("ada")).toBeNull();
  });

  it("refuses an invalid value with { path, message } issues and writes nothing", async () => {
    const prefs = defineStore(kv, "user_prefs", schema());
    const error = await prefs
      .set("ada", { theme: "blue", font_size: 3 } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    const { code, issues } = error as ValidationError;
    expect(code).toBe("INVALID_VALUE");
    expect(issues.map((issue) => issue.path).sort()).toEqual([["font_size"], ["theme"]]);
    for (const issue of issues) expect(issue.message).toEqual(expect.any(String));
    expect(await kv.count({ prefix: ["user_prefs"] })).toBe(0);
  });

  it("exports its schema as JSON Schema and registers it under its hash", async () => {
    const prefs = defineStore(kv, "user_prefs", schema());
    expect(prefs.jsonSchema).toMatchObject({
      type: "object",
      properties: {
        theme: { enum: expect.arrayContaining(["light", "dark"]) },
        font_size: { type: "integer" },
      },
    });
    expect(prefs.schemaHash).toMatch(/^[0-9a-f]{64}$/);
    await prefs.set("ada", { theme: "light", font_size: 12 });
    expect(await getSchema(kv, prefs.schemaHash)).toMatchObject({
      hash: prefs.schemaHash,
      version: 1,
      jsonSchema: prefs.jsonSchema,
    });
  });
});

describe("typed stores", () => {
  const schema = z.object({ x: z.number(), y: z.number() });

  it("keeps entries under [name, id] in an envelope recording the schema hash", async () => {
    const cursors = defineStore(kv, "cursors", schema);
    await cursors.set("u1", { x: 1, y: 2 });
    expect((await kv.get(["cursors", "u1"])).value).toEqual({
      v: { x: 1, y: 2 },
      s: cursors.schemaHash,
      n: 1,
    });
  });

  it("lists the entries whose value matches a where filter on the value's fields", async () => {
    const cursors = defineStore(kv, "cursors", schema);
    for (let i = 0; i < 6; i++) await cursors.set(`c${i}`, { x: i, y: i % 2 });
    const page = await cursors.list({ where: { y: 1, x: { $gt: 1 } }, limit: 10 });
    expect(page.entries.map((e) => e.id)).toEqual(["c3", "c5"]);
    const either = await cursors.list({ where: { $or: [{ x: 0 }, { x: 4 }] } });
    expect(either.entries.map((e) => e.value)).toEqual([
      { x: 0, y: 0 },
      { x: 4, y: 0 },
    ]);
  });

  it("lists by id prefix, a page at a time", async () => {
    const cursors = defineStore(kv, "cursors", schema);
    for (const id of ["user:1", "user:2", "user:3", "team:1", "user"])
      await cursors.set(id, { x: 0, y: 0 });
    await kv.set(["cursors", "user:9", "extra"], "not an entry");
    const first = await cursors.list({ prefix: "user:", limit: 2 });
    expect(first.entries.map((e) => e.id)).toEqual(["user:1", "user:2"]);
    const second = await cursors.list({ prefix: "user:", limit: 2, cursor: first.cursor! });
    expect(second.entries.map((e) => e.id)).toEqual(["user:3"]);
    expect(second.cursor).toBeNull();
    expect((await cursors.list()).entries.map((e) => e.id)).toEqual([
      "team:1",
      "user",
      "user:1",
      "user:2",
      "user:3",
    ]);
  });

  it("expires entries written with expireIn", async () => {
    let now = 1_000_000;
    const clocked = await openKv(undefined, { clock: () => now });
    try {
      const sessions = defineStore(clocked, "sessions", z.object({ user: z.string() }));
      await sessions.set("s1", { user: "ada" }, { expireIn: 1000 });
      expect(await sessions.get("s1")).toEqual({ user: "ada" });
      now += 1001;
      expect(await sessions.get("s1")).toBeNull();
    } finally {
      await clocked.close();
    }
  });

  it("watches one entry", async () => {
    const cursors = defineStore(kv, "cursors", schema);
    const reader = cursors.watch("u1").getReader();
    expect((await reader.read()).value).toBeNull();
    await cursors.set("u1", { x: 5, y: 6 });
    expect((await reader.read()).value).toEqual({ x: 5, y: 6 });
    await cursors.delete("u1");
    expect((await reader.read()).value).toBeNull();
    await reader.cancel();
  });

  it("stores the schema's output and accepts its input", async () => {
    const events = defineStore(
      kv,
      "events",
      z.object({ at: z.string().transform((s) => new Date(s)) }),
    );
    await events.set("e1", { at: "2025-01-01T00:00:00.000Z" });
    const read = await events.get("e1");
    expect(read?.at).toEqual(new Date("2025-01-01T00:00:00.000Z"));
  });

  it("works with asynchronous schemas outside commits", async () => {
    const names = defineStore(
      kv,
      "names",
      z.string().refine(async (s) => s !== "taken"),
    );
    await names.set("a", "free");
    await expect(names.set("b", "taken")).rejects.toThrow(ValidationError);
    expect(() => names.in(kv.atomic()).set("c", "free")).toThrow(/asynchronous schema/);
  });

  it("refuses invalid and reserved names and ids", () => {
    expect(() => defineStore(kv, "UserPrefs", schema)).toThrow(/starts with a lowercase letter/);
    expect(() => defineStore(kv, "user-prefs", schema)).toThrow(/starts with a lowercase letter/);
    expect(defineStore(kv, "userPrefs", schema).key("ada")).toEqual(["userPrefs", "ada"]);
    expect(() => defineStore(kv, "$schemas", schema)).toThrow(/reserved/);
    expect(() => defineStore(kv, "prefs", { parse: () => 1 } as never)).toThrow(/Standard Schema/);
    const prefs = defineStore(kv, "prefs", schema);
    expect(() => prefs.key("")).toThrow(/non-empty string/);
    expect(() => prefs.key(42 as never)).toThrow(/non-empty string/);
  });

  it("can be defined without a database and bound later, migrations included", async () => {
    const definition = defineStore("people", z.object({ first: z.string() }), {
      version: 2,
    }).migrate<{ name: string }>(1, (old) => ({ first: old.name }));
    await defineStore(kv, "people", z.object({ name: z.string() })).set("ada", { name: "Ada" });
    const people = definition.bind(kv);
    expect(people.schemaHash).toBe(definition.schemaHash);
    expect(await people.get("ada")).toEqual({ first: "Ada" });
    expect("get" in definition).toBe(false);
  });

  it("is shared by namespaces through bind()", async () => {
    const prefs = defineStore(kv, "prefs", schema);
    const tenant = prefs.bind(kv.namespace("tenant-a"));
    await tenant.set("ada", { x: 1, y: 1 });
    expect(await prefs.get("ada")).toBeNull();
    expect(await tenant.get("ada")).toEqual({ x: 1, y: 1 });
    expect(tenant.schemaHash).toBe(prefs.schemaHash);
  });
});

describe("schema changes and migrations", () => {
  const v1 = z.object({ name: z.string() });
  const v2 = z.object({ first: z.string(), last: z.string() });
  const v3 = z.object({ first: z.string(), last: z.string(), initials: z.string() });
  const split = (old: { name: string }) => {
    const [first = "", last = ""] = old.name.split(" ");
    return { first, last };
  };

  it("upgrades an entry written under an older version when it is read", async () => {
    const before = defineStore(kv, "people", v1);
    await before.set("ada", { name: "Ada Lovelace" });
    const after = defineStore(kv, "people", v3, { version: 3 })
      .migrate(1, split)
      .migrate<{ first: string; last: string }>(2, (p) => ({
        ...p,
        initials: `${p.first[0]}${p.last[0]}`,
      }));
    expect(await after.get("ada")).toEqual({ first: "Ada", last: "Lovelace", initials: "AL" });
    expect((await kv.get(["people", "ada"])).value).toMatchObject({ s: before.schemaHash, n: 1 });
  });

  it("upgrades from an exact schema hash straight to the current shape", async () => {
    const before = defineStore(kv, "people", v1);
    await before.set("ada", { name: "Ada Lovelace" });
    const after = defineStore(kv, "people", v2).migrate(before.schemaHash, split);
    expect(after.version).toBe(1);
    expect(after.schemaHash).not.toBe(before.schemaHash);
    expect(await after.get("ada")).toEqual({ first: "Ada", last: "Lovelace" });
    expect((await after.list()).entries).toEqual([
      { id: "ada", value: { first: "Ada", last: "Lovelace" }, versionstamp: expect.any(String) },
    ]);
  });

  it("writes upgraded entries back when asked, keeping their expiry", async () => {
    const before = defineStore(kv, "people", v1);
    const { versionstamp } = await before.set(
      "ada",
      { name: "Ada Lovelace" },
      { expireIn: 60_000 },
    );
    const expiresAt = (await kv.get(["people", "ada"], { metadata: true })).metadata?.expiresAt;
    const after = defineStore(kv, "people", v2, { version: 2, writeBack: true }).migrate(1, split);
    expect(await after.get("ada")).toEqual({ first: "Ada", last: "Lovelace" });
    const stored = await kv.get(["people", "ada"], { metadata: true });
    expect(stored.versionstamp).not.toBe(versionstamp);
    expect(stored.value).toEqual({
      v: { first: "Ada", last: "Lovelace" },
      s: after.schemaHash,
      n: 2,
    });
    expect(stored.metadata?.expiresAt).toBeGreaterThanOrEqual(expiresAt! - 5);
    expect(stored.metadata?.modifiedBy).toBe("cellar:migration");
    expect((await storeSchemas(kv, "people")).map((s) => s.version)).toEqual([1, 2]);
  });

  it("reads an entry no migration can fix as absent, reports it and never overwrites it", async () => {
    const reports: InvalidValueReport[] = [];
    const before = defineStore(kv, "people", v1);
    await before.set("ada", { name: "Ada Lovelace" });
    const after = defineStore(kv, "people", v2, {
      version: 2,
      writeBack: true,
      onInvalid: (r) => reports.push(r),
    });
    const stored = await kv.get(["people", "ada"]);
    expect(await after.get("ada")).toBeNull();
    expect((await after.list()).entries).toEqual([]);
    expect(reports[0]).toMatchObject({
      key: ["people", "ada"],
      name: "people",
      id: "ada",
      value: { name: "Ada Lovelace" },
      schemaHash: before.schemaHash,
      issues: [{ path: ["first"] }, { path: ["last"] }],
    });
    expect(await kv.get(["people", "ada"])).toEqual(stored);
  });

  it("reports a migration that throws instead of throwing at the reader", async () => {
    const reports: InvalidValueReport[] = [];
    const before = defineStore(kv, "people", v1);
    await before.set("ada", { name: "Ada Lovelace" });
    const after = defineStore(kv, "people", v2, {
      version: 2,
      onInvalid: (r) => reports.push(r),
    }).migrate(1, () => {
      throw new Error("boom");
    });
    expect(await after.get("ada")).toBeNull();
    expect(reports[0]?.issues[0]?.message).toMatch(/boom/);
  });

  it("validates values written without the store against the current schema", async () => {
    const onInvalid = vi.fn();
    const people = defineStore(kv, "people", v1, { onInvalid });
    await kv.set(["people", "legacy"], { name: "Grace Hopper" });
    await kv.set(["people", "broken"], { nom: "?" });
    expect(await people.get("legacy")).toEqual({ name: "Grace Hopper" });
    expect(await people.get("broken")).toBeNull();
    expect(onInvalid).toHaveBeenCalledTimes(1);
  });

  it("refuses migrations from unknown sources", () => {
    const people = defineStore(kv, "people", v2, { version: 2 });
    expect(() => people.migrate(2, split)).toThrow(/below the current 2/);
    expect(() => people.migrate("abc", split)).toThrow(/64 hex digits/);
    expect(() => defineStore(kv, "people", v2, { version: 0 })).toThrow(/positive integer/);
  });
});
