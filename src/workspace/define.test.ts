import { type } from "arktype";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { z } from "zod";
import { KvError } from "../errors.js";
import { ValidationError } from "../typed/schemas.js";
import { boolean, date, id, select, tags, text, ytext } from "./columns.js";
import { defineMutation, defineQuery, defineWorkspace } from "./define.js";
import { bindWorkspace } from "./doc.js";

const refusal = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(KvError);
    expect((error as KvError).code).toBe("INVALID_ARGUMENT");
    return (error as Error).message;
  }
  throw new Error("expected INVALID_ARGUMENT");
};

describe("defineWorkspace", () => {
  it("accepts the seed's example, camelCase names included", () => {
    const app = defineWorkspace({
      id: "app",
      tables: { posts: { id: id(), title: text(), content: ytext() } },
      kv: {
        theme: text({ default: "light" }),
        lastSyncAt: date({ nullable: true }),
        betaFeatures: boolean({ default: false }),
        currentDraft: ytext({ nullable: true }),
      },
    });
    expect(app.id).toBe("app");
    expect(Object.keys(app.kv)).toEqual(["theme", "lastSyncAt", "betaFeatures", "currentDraft"]);
    expect(Object.isFrozen(app)).toBe(true);
  });

  it("refuses broken definitions with a message naming the problem", () => {
    expect(refusal(() => defineWorkspace({ id: "App" }))).toMatch(/workspace id/);
    expect(refusal(() => defineWorkspace({ id: "a".repeat(64) }))).toMatch(/workspace id/);
    expect(refusal(() => defineWorkspace({ id: "app", kv: { key: id() as never } }))).toMatch(
      /id\(\) is for table rows/,
    );
    expect(refusal(() => defineWorkspace({ id: "app", kv: { $all: text() } as never }))).toMatch(
      /reserved/,
    );
    expect(refusal(() => defineWorkspace({ id: "app", kv: { "last-sync": text() } }))).toMatch(
      /a name is a letter/,
    );
    expect(
      refusal(() => defineWorkspace({ id: "app", kv: { toString: text() } as never })),
    ).toMatch(/Object.prototype/);
    expect(refusal(() => defineWorkspace({ id: "app", kv: { theme: "text" as never } }))).toMatch(
      /must be a column/,
    );
    expect(
      refusal(() => defineWorkspace({ id: "app", tables: { posts: { title: text() } } })),
    ).toMatch(/exactly one id\(\) field/);
    expect(
      refusal(() => defineWorkspace({ id: "app", tables: { posts: { id: id(), other: id() } } })),
    ).toMatch(/exactly one id\(\) field .*got 2/);
    expect(refusal(() => defineWorkspace({ id: "app", actions: {} as never }))).toMatch(/actions/);
    expect(refusal(() => ytext({ default: 3 as never }))).toMatch(/default of a ytext/);
  });
});

describe("actions", () => {
  const app = defineWorkspace({
    id: "app",
    tables: { todos: { id: id(), title: text(), labels: tags() } },
    kv: { theme: select({ options: ["light", "dark"], default: "light" }) },
    actions: ({ kv, tables }) => ({
      setTheme: defineMutation({
        input: z.object({ theme: z.enum(["light", "dark"]) }),
        handler: ({ theme }) => kv.theme.set(theme),
      }),
      getTheme: defineQuery({ handler: () => kv.theme.get() }),
      addTodo: defineMutation({
        input: v.object({ id: v.string(), title: v.string() }),
        description: "Adds a todo",
        handler: ({ id, title }) => {
          tables.todos.upsert({ id, title });
          tables.todos.upsert({ id: `${id}-copy`, title });
          return tables.todos.getAll().length;
        },
      }),
      countTodos: defineQuery({
        input: type({ min: "number" }),
        handler: async ({ min }) => Math.max(min, tables.todos.getAll().length),
      }),
    }),
  });

  it("validate their input with any Standard Schema and resolve to the handler's result", async () => {
    const { actions, $kv } = bindWorkspace(app, new Y.Doc());
    await actions.setTheme({ theme: "dark" });
    expect($kv.theme.get()).toBe("dark");
    expect(await actions.getTheme()).toBe("dark");
    expect(await actions.addTodo({ id: "t1", title: "Write" })).toBe(2);
    expect(await actions.countTodos({ min: 5 })).toBe(5);
    expect(actions.addTodo.kind).toBe("mutation");
    expect(actions.getTheme.kind).toBe("query");
    expect(actions.addTodo.description).toBe("Adds a todo");
  });

  it("refuse invalid input with INVALID_VALUE and the schema's issues", async () => {
    const { actions, $kv } = bindWorkspace(app, new Y.Doc());
    const error = await actions.setTheme({ theme: "blue" as never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe("INVALID_VALUE");
    expect((error as ValidationError).issues[0]?.path).toEqual(["theme"]);
    expect((error as Error).message).toContain('action "setTheme"');
    expect($kv.theme.get()).toBe("light");
  });

  it("run a mutation as one transaction", async () => {
    const { actions, doc } = bindWorkspace(app, new Y.Doc());
    const updates: Uint8Array[] = [];
    doc.on("update", (update: Uint8Array) => updates.push(update));
    await actions.addTodo({ id: "t1", title: "Write" });
    expect(updates).toHaveLength(1);
  });

  it("refuse a factory result that is not made of actions", () => {
    const broken = defineWorkspace({ id: "x", actions: () => ({ nope: (() => 1) as never }) });
    expect(refusal(() => bindWorkspace(broken, new Y.Doc()))).toMatch(
      /defineMutation or defineQuery/,
    );
    expect(refusal(() => defineMutation({ handler: 3 as never }))).toMatch(/handler/);
    expect(refusal(() => defineQuery({ input: {} as never, handler: () => 1 }))).toMatch(
      /Standard Schema/,
    );
  });
});
