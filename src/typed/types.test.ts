/**
 * Type-level tests: `expectTypeOf` states what inference gives, `@ts-expect-error` lines are
 * calls that must not compile. `tsc --noEmit` (part of `npm test`) checks both.
 */
import { type } from "arktype";
import * as v from "valibot";
import { afterAll, describe, expectTypeOf, it } from "vitest";
import { z } from "zod";
import { openKv } from "../open.js";
import {
  boolean,
  compose,
  type DateWithTimeZone,
  date,
  defineKv,
  defineStore,
  id,
  integer,
  json,
  real,
  type StoreEntry,
  select,
  tags,
  text,
} from "./index.js";

const kv = await openKv();
afterAll(() => kv.close());

const settings = defineKv(kv, {
  theme: select({ options: ["light", "dark"], default: "light" }),
  locale: text({ default: "en-US" }),
  nickname: text(),
  page_size: integer({ default: 20 }),
  ratio: real({ nullable: true }),
  beta: boolean({ nullable: true, default: false }),
  last_sync: date({ nullable: true }),
  labels: tags({ options: ["work", "home"], default: [] }),
  free_tags: tags(),
  prefs: json({ schema: z.object({ font_size: z.number() }), default: { font_size: 14 } }),
});

describe("defineKv types", () => {
  it("get() is T with a default, T | null when nullable or without one", () => {
    expectTypeOf(settings.theme.get).returns.resolves.toEqualTypeOf<"light" | "dark">();
    expectTypeOf(settings.locale.get).returns.resolves.toEqualTypeOf<string>();
    expectTypeOf(settings.nickname.get).returns.resolves.toEqualTypeOf<string | null>();
    expectTypeOf(settings.page_size.get).returns.resolves.toEqualTypeOf<number>();
    expectTypeOf(settings.ratio.get).returns.resolves.toEqualTypeOf<number | null>();
    expectTypeOf(settings.beta.get).returns.resolves.toEqualTypeOf<boolean | null>();
    expectTypeOf(settings.last_sync.get).returns.resolves.toEqualTypeOf<DateWithTimeZone | null>();
    expectTypeOf(settings.labels.get).returns.resolves.toEqualTypeOf<("work" | "home")[]>();
    expectTypeOf(settings.free_tags.get).returns.resolves.toEqualTypeOf<string[] | null>();
    expectTypeOf(settings.prefs.get).returns.resolves.toEqualTypeOf<{ font_size: number }>();
  });

  it("set() takes T, and null only when nullable", () => {
    expectTypeOf(settings.theme.set).parameter(0).toEqualTypeOf<"light" | "dark">();
    expectTypeOf(settings.ratio.set).parameter(0).toEqualTypeOf<number | null>();
    expectTypeOf(settings.last_sync.set).parameter(0).toEqualTypeOf<DateWithTimeZone | null>();
  });

  it("whole-definition helpers are typed per key", () => {
    expectTypeOf(settings.$get).returns.resolves.toExtend<{
      theme: "light" | "dark";
      nickname: string | null;
    }>();
    expectTypeOf(settings.$toJSON).returns.resolves.toExtend<{
      last_sync: { date: string; timeZone: string } | null;
      page_size: number;
    }>();
  });

  it("rejects wrong values, unknown keys and invalid definitions at compile time", () => {
    const never = () => {
      // @ts-expect-error a number is not a theme
      void settings.theme.set(3);
      // @ts-expect-error not an option
      void settings.theme.set("blue");
      // @ts-expect-error the column is not nullable
      void settings.locale.set(null);
      // @ts-expect-error json values follow their schema
      void settings.prefs.set({ font_size: "big" });
      // @ts-expect-error no such key
      void settings.colour.get();
      // @ts-expect-error a select default is one of its options
      select({ options: ["a", "b"], default: "c" });
      // @ts-expect-error a text default is a string
      text({ default: 1 });
      // @ts-expect-error id() is not a KV column
      defineKv(kv, { key: id() });
      // @ts-expect-error names starting with $ are reserved
      defineKv(kv, { $theme: text() });
    };
    expectTypeOf(never).toBeFunction();
  });
});

describe("defineStore types", () => {
  it("infers values from zod, valibot and arktype schemas", () => {
    const fromZod = defineStore(kv, "a", z.object({ n: z.number() }));
    const fromValibot = defineStore(kv, "b", v.object({ n: v.number() }));
    const fromArktype = defineStore(kv, "c", type({ n: "number" }));
    expectTypeOf(fromZod.get).returns.resolves.toEqualTypeOf<{ n: number } | null>();
    expectTypeOf(fromValibot.get).returns.resolves.toEqualTypeOf<{ n: number } | null>();
    expectTypeOf(fromArktype.get).returns.resolves.toEqualTypeOf<{ n: number } | null>();
    expectTypeOf(fromZod.set).returns.resolves.toEqualTypeOf<StoreEntry<{ n: number }>>();
    expectTypeOf(fromZod.list)
      .returns.resolves.toHaveProperty("entries")
      .toEqualTypeOf<StoreEntry<{ n: number }>[]>();
  });

  it("defines a store without a database, typed once bound", () => {
    const definition = defineStore("people", z.object({ name: z.string() }));
    expectTypeOf(definition).not.toHaveProperty("get");
    expectTypeOf(definition.bind(kv).get).returns.resolves.toEqualTypeOf<{ name: string } | null>();
  });

  it("takes the schema's input and returns its output", () => {
    const events = defineStore(
      kv,
      "events",
      z.object({ at: z.string().transform((s) => new Date(s)) }),
    );
    expectTypeOf(events.set).parameter(1).toEqualTypeOf<{ at: string }>();
    expectTypeOf(events.get).returns.resolves.toEqualTypeOf<{ at: Date } | null>();
  });

  it("rejects wrong values at compile time, in commits too", () => {
    const prefs = defineStore(kv, "prefs", z.object({ theme: z.enum(["light", "dark"]) }));
    const never = async () => {
      // @ts-expect-error not a theme
      await prefs.set("ada", { theme: "blue" });
      // @ts-expect-error ids are strings
      await prefs.get(42);
      // @ts-expect-error not a theme
      prefs.in(kv.atomic()).set("ada", { theme: 3 });
      // @ts-expect-error get() needs a transaction
      await prefs.in(kv.atomic()).get("ada");
      await kv.transaction(async (tx) => {
        expectTypeOf(prefs.in(tx).get).returns.resolves.toEqualTypeOf<{
          theme: "light" | "dark";
        } | null>();
        expectTypeOf(settings.page_size.in(tx).get).returns.resolves.toEqualTypeOf<number>();
      });
    };
    expectTypeOf(never).toBeFunction();
  });
});

describe("compose types", () => {
  it("gives one typed field per source", () => {
    const prefs = defineStore(kv, "prefs", z.object({ font_size: z.number() }));
    const payload = () =>
      compose(kv, { theme: settings.theme, prefs: prefs.ref("ada"), raw: ["stats", "visits"] });
    expectTypeOf(payload).returns.resolves.toEqualTypeOf<{
      theme: "light" | "dark";
      prefs: { font_size: number } | null;
      raw: unknown;
    }>();
  });
});
