/**
 * Type-level tests: `expectTypeOf` states what inference gives, `@ts-expect-error` lines are
 * calls that must not compile. `tsc --noEmit` (part of `npm test`) checks both.
 */
import { type } from "arktype";
import { describe, expectTypeOf, it } from "vitest";
import * as Y from "yjs";
import { z } from "zod";
import {
  boolean,
  type DateWithTimeZone,
  date,
  id,
  integer,
  json,
  real,
  select,
  tags,
  text,
  ytext,
} from "./columns.js";
import { defineMutation, defineQuery, defineWorkspace } from "./define.js";
import { bindWorkspace } from "./doc.js";

const app = defineWorkspace({
  id: "app",
  tables: {
    posts: {
      id: id(),
      title: text(),
      content: ytext(),
      labels: tags({ options: ["a", "b"] }),
      views: integer({ default: 0 }),
      score: real({ nullable: true }),
      publishedAt: date({ nullable: true }),
    },
  },
  kv: {
    theme: select({ options: ["light", "dark"], default: "light" }),
    locale: text({ default: "en-US" }),
    nickname: text(),
    lastSyncAt: date({ nullable: true }),
    betaFeatures: boolean({ default: false }),
    notes: ytext(),
    currentDraft: ytext({ nullable: true }),
    labels: tags({ options: ["work", "home"] }),
    maybeTags: tags({ nullable: true }),
    userPrefs: json({
      schema: type({ notifications: "boolean", fontSize: "number" }),
      default: { notifications: true, fontSize: 14 },
    }),
  },
  actions: ({ kv, tables }) => ({
    setTheme: defineMutation({
      input: z.object({ theme: z.enum(["light", "dark"]) }),
      handler: ({ theme }) => {
        expectTypeOf(theme).toEqualTypeOf<"light" | "dark">();
        kv.theme.set(theme);
      },
    }),
    getTheme: defineQuery({ handler: () => kv.theme.get() }),
    countPosts: defineQuery({
      input: z.object({ since: z.string().transform((s) => new Date(s)) }),
      handler: async ({ since }) => {
        expectTypeOf(since).toEqualTypeOf<Date>();
        return tables.posts.getAll().length;
      },
    }),
  }),
});

const { $kv, $tables, actions } = bindWorkspace(app, new Y.Doc());

describe("$kv types", () => {
  it("get() is T with a default, T | null when nullable, live Y types for ytext and tags", () => {
    expectTypeOf($kv.theme.get()).toEqualTypeOf<"light" | "dark">();
    expectTypeOf($kv.locale.get()).toEqualTypeOf<string>();
    expectTypeOf($kv.nickname.get()).toEqualTypeOf<string | null>();
    expectTypeOf($kv.lastSyncAt.get()).toEqualTypeOf<DateWithTimeZone | null>();
    expectTypeOf($kv.betaFeatures.get()).toEqualTypeOf<boolean>();
    expectTypeOf($kv.notes.get()).toEqualTypeOf<Y.Text>();
    expectTypeOf($kv.currentDraft.get()).toEqualTypeOf<Y.Text | null>();
    expectTypeOf($kv.labels.get()).toEqualTypeOf<Y.Array<"work" | "home">>();
    expectTypeOf($kv.maybeTags.get()).toEqualTypeOf<Y.Array<string> | null>();
    expectTypeOf($kv.userPrefs.get()).toEqualTypeOf<{ notifications: boolean; fontSize: number }>();
  });

  it("set() takes the value (strings for ytext, arrays for tags), null only when nullable", () => {
    expectTypeOf($kv.theme.set).parameter(0).toEqualTypeOf<"light" | "dark">();
    expectTypeOf($kv.notes.set).parameter(0).toEqualTypeOf<string>();
    expectTypeOf($kv.currentDraft.set).parameter(0).toEqualTypeOf<string | null>();
    expectTypeOf($kv.labels.set).parameter(0).toEqualTypeOf<("work" | "home")[]>();
    expectTypeOf($kv.lastSyncAt.set).parameter(0).toEqualTypeOf<DateWithTimeZone | null>();
  });

  it("observe, toJSON and $toJSON are typed per key", () => {
    $kv.notes.observe((value) => expectTypeOf(value).toEqualTypeOf<Y.Text>());
    expectTypeOf($kv.lastSyncAt.toJSON()).toEqualTypeOf<{
      date: string;
      timeZone: string;
    } | null>();
    expectTypeOf($kv.$toJSON()).toExtend<{
      notes: string;
      currentDraft: string | null;
      labels: ("work" | "home")[];
      theme: "light" | "dark";
    }>();
    $kv.$observe((change) => expectTypeOf(change.keys).toEqualTypeOf<(keyof typeof app.kv)[]>());
  });

  it("rejects wrong values and unknown keys at compile time", () => {
    const never = () => {
      // @ts-expect-error not an option
      $kv.theme.set("blue");
      // @ts-expect-error ytext is set from a string
      $kv.notes.set(3);
      // @ts-expect-error not nullable
      $kv.notes.set(null);
      // @ts-expect-error not a tag option
      $kv.labels.set(["play"]);
      // @ts-expect-error json values follow their schema
      $kv.userPrefs.set({ notifications: "yes", fontSize: 1 });
      // @ts-expect-error no such key
      $kv.colour.get();
    };
    expectTypeOf(never).toBeFunction();
  });
});

describe("$tables types", () => {
  it("rows read live Y types, nullable fields as T | null", () => {
    const post = $tables.posts.get("p1");
    expectTypeOf(post).toEqualTypeOf<{
      id: string;
      title: string;
      content: Y.Text;
      labels: Y.Array<"a" | "b">;
      views: number;
      score: number | null;
      publishedAt: DateWithTimeZone | null;
    } | null>();
    expectTypeOf($tables.posts.getJSON("p1")).toExtend<{
      content: string;
      labels: ("a" | "b")[];
      publishedAt: { date: string; timeZone: string } | null;
    } | null>();
  });

  it("upsert() needs the id and the fields without a default", () => {
    $tables.posts.upsert({ id: "p1", title: "Hello" });
    $tables.posts.upsert({ id: "p1", title: "Hello", content: "text", labels: ["a"], score: null });
    const never = () => {
      // @ts-expect-error title is required
      $tables.posts.upsert({ id: "p1" });
      // @ts-expect-error the id is required
      $tables.posts.upsert({ title: "Hello" });
      // @ts-expect-error views is not nullable
      $tables.posts.upsert({ id: "p1", title: "Hello", views: null });
      // @ts-expect-error no such table
      $tables.comments.getAll();
    };
    expectTypeOf(never).toBeFunction();
  });
});

describe("actions and definitions", () => {
  it("actions take the schema's input and resolve to the handler's result", () => {
    expectTypeOf(actions.setTheme).parameter(0).toEqualTypeOf<{ theme: "light" | "dark" }>();
    expectTypeOf(actions.setTheme).returns.resolves.toEqualTypeOf<void>();
    expectTypeOf(actions.getTheme).returns.resolves.toEqualTypeOf<"light" | "dark">();
    expectTypeOf(actions.countPosts).parameter(0).toEqualTypeOf<{ since: string }>();
    expectTypeOf(actions.countPosts).returns.resolves.toEqualTypeOf<number>();
    const never = () => {
      // @ts-expect-error not a theme
      void actions.setTheme({ theme: "blue" });
      // @ts-expect-error no such action
      void actions.deleteAll();
    };
    expectTypeOf(never).toBeFunction();
  });

  it("refuses id() in kv and $ names at compile time", () => {
    const never = () => {
      // @ts-expect-error id() is not a KV column
      defineWorkspace({ id: "x", kv: { key: id() } });
      // @ts-expect-error names starting with $ are reserved
      defineWorkspace({ id: "x", kv: { $theme: text() } });
      // @ts-expect-error names starting with $ are reserved
      defineWorkspace({ id: "x", tables: { $posts: { id: id() } } });
      // @ts-expect-error a ytext default is a string
      ytext({ default: 1 });
    };
    expectTypeOf(never).toBeFunction();
  });
});
