import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import { select, text } from "./columns.js";
import { compose } from "./compose.js";
import { defineKv } from "./define-kv.js";
import { defineStore } from "./store.js";

let kv: Kv;
beforeEach(async () => {
  kv = await openKv();
});
afterEach(() => kv.close());

describe("compose", () => {
  it("builds one object from typed values, store entries and plain keys", async () => {
    const settings = defineKv(kv, {
      theme: select({ options: ["light", "dark"], default: "light" }),
      nickname: text(),
    });
    const prefs = defineStore(kv, "user_prefs", z.object({ font_size: z.number() }));
    await settings.nickname.set("ada");
    await prefs.set("ada", { font_size: 16 });
    await kv.set(["stats", "visits"], 12);
    expect(
      await compose(kv, {
        theme: settings.theme,
        nickname: settings.nickname,
        prefs: prefs.ref("ada"),
        other: prefs.ref("bob"),
        visits: ["stats", "visits"],
        missing: ["stats", "nothing"],
      }),
    ).toEqual({
      theme: "light",
      nickname: "ada",
      prefs: { font_size: 16 },
      other: null,
      visits: 12,
      missing: null,
    });
  });

  it("reads every field from one snapshot", async () => {
    const settings = defineKv(kv, { theme: text({ default: "light" }) });
    const getMany = vi.spyOn(kv, "getMany");
    const get = vi.spyOn(kv, "get");
    await compose(kv, { theme: settings.theme, a: ["a"], b: ["b"] });
    expect(getMany).toHaveBeenCalledTimes(1);
    expect(get).not.toHaveBeenCalled();
  });

  it("refuses sources from another namespace, and anything that is not a source", async () => {
    const elsewhere = defineKv(kv.namespace("elsewhere"), { theme: text({ default: "light" }) });
    await expect(compose(kv, { theme: elsewhere.theme })).rejects.toThrow(/one namespace/);
    await expect(compose(kv, { theme: 42 } as never)).rejects.toThrow(/must be a key/);
    expect(await compose(kv.namespace("elsewhere"), { theme: elsewhere.theme })).toEqual({
      theme: "light",
    });
  });
});
