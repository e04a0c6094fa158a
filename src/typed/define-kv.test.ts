import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import {
  boolean,
  date,
  dateWithTimeZone,
  id,
  integer,
  json,
  real,
  select,
  tags,
  text,
} from "./columns.js";
import { defineKv } from "./define-kv.js";
import { type InvalidValueReport, ValidationError } from "./schemas.js";

let kv: Kv;
beforeEach(async () => {
  kv = await openKv();
});
afterEach(() => kv.close());

const definition = () => ({
  theme: select({ options: ["light", "dark"], default: "light" }),
  locale: text({ default: "en-US" }),
  page_size: integer({ default: 20 }),
  ratio: real({ nullable: true }),
  beta: boolean({ default: false }),
  last_sync: date({ nullable: true }),
  labels: tags({ options: ["work", "home"], default: [] }),
  nickname: text(),
  prefs: json({
    schema: z.object({ notifications: z.boolean(), font_size: z.number() }),
    default: () => ({ notifications: true, font_size: 14 }),
  }),
});

/** Resolves with the next `count` values an observer receives. */
function collect<T>(subscribe: (cb: (value: T) => void) => () => void, count: number) {
  const seen: T[] = [];
  let stop = () => {};
  const done = new Promise<T[]>((resolve) => {
    stop = subscribe((value) => {
      seen.push(value);
      if (seen.length === count) resolve(seen);
    });
  });
  return { done, seen, stop: () => stop() };
}

describe("defineKv", () => {
  it("reads defaults while keys are unset, and null without a default", async () => {
    const settings = defineKv(kv, definition());
    expect(await settings.theme.get()).toBe("light");
    expect(await settings.page_size.get()).toBe(20);
    expect(await settings.beta.get()).toBe(false);
    expect(await settings.labels.get()).toEqual([]);
    expect(await settings.prefs.get()).toEqual({ notifications: true, font_size: 14 });
    expect(await settings.ratio.get()).toBeNull();
    expect(await settings.last_sync.get()).toBeNull();
    expect(await settings.nickname.get()).toBeNull();
  });

  it("writes and reads every column type", async () => {
    const settings = defineKv(kv, definition());
    const when = dateWithTimeZone("2025-05-01T08:30:00.000Z", "America/New_York");
    expect(await settings.theme.set("dark")).toBe("dark");
    await settings.locale.set("fr-FR");
    await settings.page_size.set(50);
    await settings.ratio.set(0.75);
    await settings.beta.set(true);
    await settings.last_sync.set(when);
    await settings.labels.set(["home"]);
    await settings.nickname.set("ada");
    await settings.prefs.set({ notifications: false, font_size: 16 });
    expect(await settings.$get()).toEqual({
      theme: "dark",
      locale: "fr-FR",
      page_size: 50,
      ratio: 0.75,
      beta: true,
      last_sync: when,
      labels: ["home"],
      nickname: "ada",
      prefs: { notifications: false, font_size: 16 },
    });
    expect((await kv.get(["$kv", "theme"])).value).toBe("dark");
  });

  it("stores null in nullable columns", async () => {
    const settings = defineKv(kv, { ratio: real({ nullable: true, default: 1 }) });
    expect(await settings.ratio.get()).toBe(1);
    await settings.ratio.set(null);
    expect(await settings.ratio.get()).toBeNull();
  });

  it("reset deletes the key and returns the default", async () => {
    const settings = defineKv(kv, definition());
    await settings.theme.set("dark");
    await settings.nickname.set("ada");
    expect(await settings.theme.reset()).toBe("light");
    expect(await settings.nickname.reset()).toBeNull();
    expect(await settings.theme.get()).toBe("light");
    expect((await kv.get(["$kv", "theme"])).versionstamp).toBeNull();
  });

  it("hands out a fresh default each time, so mutating one is safe", async () => {
    const settings = defineKv(kv, {
      labels: tags({ default: ["a"] }),
      prefs: json({ schema: z.object({ list: z.array(z.string()) }), default: { list: [] } }),
    });
    (await settings.labels.get()).push("b");
    (await settings.prefs.get()).list.push("x");
    expect(await settings.labels.get()).toEqual(["a"]);
    expect(await settings.prefs.get()).toEqual({ list: [] });
  });

  it("refuses a wrong value with the issues, and writes nothing", async () => {
    const settings = defineKv(kv, definition());
    const error = await settings.theme.set("blue" as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({
      code: "INVALID_VALUE",
      issues: [{ path: [], message: 'expected one of "light", "dark", got "blue"' }],
    });
    await expect(
      settings.prefs.set({ notifications: "yes", font_size: 3 } as never),
    ).rejects.toMatchObject({
      issues: [{ path: ["notifications"] }],
    });
    await expect(settings.theme.set(null as never)).rejects.toThrow(ValidationError);
    expect(await kv.count({ prefix: ["$kv"] })).toBe(0);
  });

  it("reads a stored value that no longer validates as the default, reports it and keeps it", async () => {
    const reports: InvalidValueReport[] = [];
    const settings = defineKv(kv, definition(), { onInvalid: (report) => reports.push(report) });
    const { versionstamp } = await kv.set(["$kv", "theme"], "sepia");
    expect(await settings.theme.get()).toBe("light");
    expect(await settings.$toJSON()).toMatchObject({ theme: "light" });
    expect(reports[0]).toEqual({
      key: ["$kv", "theme"],
      name: "theme",
      value: "sepia",
      versionstamp,
      issues: [{ path: [], message: 'expected one of "light", "dark", got "sepia"' }],
    });
    expect((await kv.get(["$kv", "theme"])).value).toBe("sepia");
  });

  it("warns once per stored value by default", async () => {
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    try {
      const settings = defineKv(kv, { count: integer({ default: 0 }) });
      await kv.set(["$kv", "count"], "many");
      expect(await settings.count.get()).toBe(0);
      expect(await settings.count.get()).toBe(0);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0]?.[1]).toEqual({ code: "CELLAR_INVALID_STORED_VALUE" });
    } finally {
      warn.mockRestore();
    }
  });

  it("observes the current value, then every change, until unsubscribed", async () => {
    const settings = defineKv(kv, definition());
    const observed = collect<string>((cb) => settings.theme.observe(cb), 3);
    await vi.waitFor(() => expect(observed.seen).toEqual(["light"]));
    await settings.theme.set("dark");
    await vi.waitFor(() => expect(observed.seen).toEqual(["light", "dark"]));
    await settings.theme.reset();
    expect(await observed.done).toEqual(["light", "dark", "light"]);
    observed.stop();
    await settings.theme.set("dark");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(observed.seen).toHaveLength(3);
  });

  it("does not fire for a write that leaves the value as it was", async () => {
    const settings = defineKv(kv, definition());
    const observed = collect<string>((cb) => settings.theme.observe(cb), 3);
    await vi.waitFor(() => expect(observed.seen).toEqual(["light"]));
    await settings.theme.set("light");
    await settings.theme.reset(); // back to the default, "light"
    await settings.theme.set("light");
    await settings.theme.set("dark");
    await vi.waitFor(() => expect(observed.seen).toEqual(["light", "dark"]));
    await settings.theme.set("dark");
    await settings.theme.set("light");
    expect(await observed.done).toEqual(["light", "dark", "light"]);
    observed.stop();
  });

  it("lists its values and their JSON forms", async () => {
    const settings = defineKv(kv, definition());
    expect(settings.$all().map((value) => value.name)).toEqual(Object.keys(definition()));
    await settings.last_sync.set(dateWithTimeZone("2025-01-02T03:04:05.000Z", "UTC"));
    expect(await settings.$toJSON()).toEqual({
      theme: "light",
      locale: "en-US",
      page_size: 20,
      ratio: null,
      beta: false,
      last_sync: { date: "2025-01-02T03:04:05.000Z", timeZone: "UTC" },
      labels: [],
      nickname: null,
      prefs: { notifications: true, font_size: 14 },
    });
  });

  it("lives in the view it is given, under its prefix", async () => {
    const a = defineKv(kv.namespace("workspace-a"), { theme: text({ default: "light" }) });
    const b = defineKv(kv.namespace("workspace-b"), { theme: text({ default: "light" }) });
    const custom = defineKv(
      kv,
      { theme: text({ default: "light" }) },
      { prefix: ["settings", "ui"] },
    );
    await a.theme.set("dark");
    await custom.theme.set("sepia");
    expect(await b.theme.get()).toBe("light");
    expect(await a.theme.get()).toBe("dark");
    expect((await kv.get(["settings", "ui", "theme"])).value).toBe("sepia");
  });

  it("accepts camelCase names, each stored under its own key", async () => {
    const settings = defineKv(kv, {
      lastSyncAt: date({ nullable: true }),
      betaFeatures: boolean({ default: false }),
      userPrefs: json({
        schema: z.object({ notifications: z.boolean(), fontSize: z.number() }),
        default: { notifications: true, fontSize: 14 },
      }),
      page_size2: integer({ default: 20 }),
    });
    expect(await settings.lastSyncAt.get()).toBeNull();
    expect(await settings.userPrefs.get()).toEqual({ notifications: true, fontSize: 14 });
    await settings.betaFeatures.set(true);
    await settings.userPrefs.set({ notifications: false, fontSize: 16 });
    expect((await kv.get(["$kv", "betaFeatures"])).value).toBe(true);
    expect(await settings.$get()).toEqual({
      lastSyncAt: null,
      betaFeatures: true,
      userPrefs: { notifications: false, fontSize: 16 },
      page_size2: 20,
    });
  });

  it("refuses invalid names, reserved names and id()", () => {
    const rule = /starts with a lowercase letter.*\/\^\[a-z\]\[a-zA-Z0-9_\]\*\$\//;
    expect(() => defineKv(kv, { Theme: text() })).toThrow(rule);
    expect(() => defineKv(kv, { "2fa": boolean() })).toThrow(rule);
    expect(() => defineKv(kv, { "dark-mode": boolean() })).toThrow(rule);
    expect(() => defineKv(kv, { _draft: text() })).toThrow(rule);
    expect(() => defineKv(kv, { é: text() })).toThrow(rule);
    expect(() => defineKv(kv, { $all: text() } as never)).toThrow(/reserved/);
    expect(() => defineKv(kv, { toString: text() } as never)).toThrow(/Object\.prototype/);
    expect(() => defineKv(kv, { hasOwnProperty: text() } as never)).toThrow(/Object\.prototype/);
    expect(() => defineKv(kv, { id: id() } as never)).toThrow(/id\(\) is for table rows/);
    expect(() => defineKv(kv, { theme: "light" } as never)).toThrow(/must be a column/);
  });
});
