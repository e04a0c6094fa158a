import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import { integer, json, select } from "./columns.js";
import { defineKv } from "./define-kv.js";
import { ValidationError } from "./schemas.js";
import { defineStore } from "./store.js";

let kv: Kv;
beforeEach(async () => {
  kv = await openKv();
});
afterEach(() => kv.close());

const setup = () => ({
  settings: defineKv(kv, {
    theme: select({ options: ["light", "dark"], default: "light" }),
    visits: integer({ default: 0 }),
    slow: json({ schema: z.string().refine(async () => true), nullable: true }),
  }),
  prefs: defineStore(kv, "user_prefs", z.object({ theme: z.enum(["light", "dark"]) })),
});

const queued = async () => (await kv.queue("default").dequeue())?.value ?? null;

describe("typed writes in atomic operations", () => {
  it("commit with plain keys and a queue message: all at once", async () => {
    const { settings, prefs } = setup();
    const op = kv
      .atomic()
      .set(["audit", "1"], "theme changed")
      .enqueue({ kind: "theme", user: "ada" });
    prefs.in(op).set("ada", { theme: "dark" });
    settings.theme.in(op).set("dark");
    const result = await op.commit();
    expect(result.ok).toBe(true);
    expect(await prefs.get("ada")).toEqual({ theme: "dark" });
    expect(await settings.theme.get()).toBe("dark");
    expect((await kv.get(["audit", "1"])).value).toBe("theme changed");
    expect(await queued()).toEqual({ kind: "theme", user: "ada" });
  });

  it("write nothing when a check fails", async () => {
    const { settings, prefs } = setup();
    const first = await prefs.set("ada", { theme: "light" });
    await prefs.set("ada", { theme: "dark" });
    const op = kv.atomic().set(["audit", "1"], "x").enqueue("message");
    prefs.in(op).check("ada", first.versionstamp).set("ada", { theme: "light" });
    settings.theme.in(op).set("dark");
    expect(await op.commit()).toEqual({ ok: false });
    expect(await prefs.get("ada")).toEqual({ theme: "dark" });
    expect(await settings.theme.get()).toBe("light");
    expect((await kv.get(["audit", "1"])).versionstamp).toBeNull();
    expect(await queued()).toBeNull();
  });

  it("refuse an invalid value before anything is committed", async () => {
    const { settings, prefs } = setup();
    const op = kv.atomic().set(["audit", "1"], "x");
    settings.theme.in(op).set("dark");
    expect(() => prefs.in(op).set("ada", { theme: "blue" } as never)).toThrow(ValidationError);
    expect(() => settings.visits.in(op).set(1.5)).toThrow(ValidationError);
    expect(() => settings.slow.in(op).set("x")).toThrow(/asynchronous schema/);
  });

  it("refuse an operation of another namespace", () => {
    const { settings, prefs } = setup();
    const other = kv.namespace("elsewhere").atomic();
    expect(() => prefs.in(other)).toThrow(/namespace/);
    expect(() => settings.theme.in(other)).toThrow(/namespace/);
    expect(() => prefs.in({} as never)).toThrow(/atomic operation or a transaction/);
  });

  it("reset and delete inside an operation", async () => {
    const { settings, prefs } = setup();
    await settings.theme.set("dark");
    await prefs.set("ada", { theme: "dark" });
    const op = kv.atomic();
    settings.theme.in(op).reset();
    prefs.in(op).delete("ada");
    await op.commit();
    expect(await settings.theme.get()).toBe("light");
    expect(await prefs.get("ada")).toBeNull();
  });
});

describe("typed reads and writes in transactions", () => {
  it("read typed values, write stores, plain keys and a queue message in one commit", async () => {
    const { settings, prefs } = setup();
    await settings.visits.set(4);
    const result = await kv.transaction(async (tx) => {
      const visits = await settings.visits.in(tx).get();
      settings.visits.in(tx).set(visits + 1);
      prefs.in(tx).set("ada", { theme: "dark" });
      tx.set(["stats", "last"], "ada").enqueue({ kind: "visit", visits: visits + 1 });
      return prefs.in(tx).get("ada");
    });
    expect(result).toMatchObject({ ok: true, value: { theme: "dark" } });
    expect(await settings.visits.get()).toBe(5);
    expect(await prefs.get("ada")).toEqual({ theme: "dark" });
    expect((await kv.get(["stats", "last"])).value).toBe("ada");
    expect(await queued()).toEqual({ kind: "visit", visits: 5 });
  });

  it("retry on conflict with fresh typed reads", async () => {
    const { settings } = setup();
    let attempts = 0;
    const result = await kv.transaction(async (tx) => {
      const visits = await settings.visits.in(tx).get();
      if (attempts++ === 0) await settings.visits.set(10);
      settings.visits.in(tx).set(visits + 1);
    });
    expect(result.ok).toBe(true);
    expect(attempts).toBe(2);
    expect(await settings.visits.get()).toBe(11);
  });

  it("commit nothing when the callback throws a validation error", async () => {
    const { settings, prefs } = setup();
    const result = await kv.transaction(async (tx) => {
      tx.set(["stats", "last"], "ada").enqueue("message");
      settings.theme.in(tx).set("dark");
      prefs.in(tx).set("ada", { theme: "sepia" } as never);
    });
    expect(result.ok).toBe(false);
    expect((result as { error: unknown }).error).toBeInstanceOf(ValidationError);
    expect(await settings.theme.get()).toBe("light");
    expect((await kv.get(["stats", "last"])).versionstamp).toBeNull();
    expect(await queued()).toBeNull();
  });
});
