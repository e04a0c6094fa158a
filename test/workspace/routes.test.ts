/**
 * A workspace's REST routes, in process (`app.request`): KV keys, table rows and actions in
 * their JSON forms, validation answered with 400 and the issues, tokens and namespaces, and the
 * OpenAPI description.
 */
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { TokenGrant } from "../../src/http/auth.js";
import { type Kv, openKv } from "../../src/index.js";
import { type CellarApp, createApp } from "../../src/server/app.js";
import { date, id, integer, select, tags, text, ytext } from "../../src/workspace/columns.js";
import { defineMutation, defineQuery, defineWorkspace } from "../../src/workspace/define.js";
import { openPersistedDoc } from "../../src/workspace/persist.js";

const app = defineWorkspace({
  id: "app",
  tables: { posts: { id: id(), title: text(), body: ytext(), stars: integer({ default: 0 }) } },
  kv: {
    theme: select({ options: ["light", "dark"], default: "light" }),
    notes: ytext(),
    labels: tags(),
    lastSyncAt: date({ nullable: true }),
  },
  actions: ({ kv, tables }) => ({
    setTheme: defineMutation({
      input: z.object({ theme: z.enum(["light", "dark"]) }),
      handler: ({ theme }) => kv.theme.set(theme),
    }),
    getTheme: defineQuery({ handler: () => kv.theme.get() }),
    countPosts: defineQuery({ handler: () => tables.posts.getAll().length }),
  }),
});

const TOKENS: TokenGrant[] = [
  { token: "write-token-0123456789", namespaces: ["workspace-app", "tenant-a"], access: "write" },
  { token: "read-token-0123456789", namespaces: ["workspace-app"], access: "read" },
  { token: "other-token-0123456789", namespaces: ["tenant-a"], access: "admin" },
];

let open: { kv: Kv; served: CellarApp } | null = null;

afterEach(async () => {
  await open?.served.close();
  await open?.kv.close();
  open = null;
});

async function serve(tokens?: TokenGrant[], idleMs?: number) {
  const kv = await openKv();
  const served = createApp(kv, {
    workspaces: [app],
    ...(tokens && { tokens }),
    ...(idleMs !== undefined && { workspaceIdleMs: idleMs }),
  });
  open = { kv, served };
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const response = await served.app.request(path, {
      method,
      headers: {
        ...(body !== undefined && { "content-type": "application/json" }),
        ...(token && { authorization: `Bearer ${token}` }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: await response.json() };
  };
  return { kv, served, call };
}

describe("KV keys", () => {
  it("reads defaults, writes, resets, and answers every key at once", async () => {
    const { call } = await serve();
    expect(await call("GET", "/workspaces/app/kv")).toEqual({
      status: 200,
      body: { data: { theme: "light", notes: "", labels: [], lastSyncAt: null } },
    });
    expect(await call("PUT", "/workspaces/app/kv/theme", { value: "dark" })).toEqual({
      status: 200,
      body: { data: "dark" },
    });
    expect((await call("PUT", "/workspaces/app/kv/notes", { data: "hello" })).body).toEqual({
      data: "hello",
    });
    const when = { date: "2025-01-02T03:04:05.000Z", timeZone: "Europe/Paris" };
    expect((await call("PUT", "/workspaces/app/kv/lastSyncAt", { value: when })).body).toEqual({
      data: when,
    });
    expect((await call("PUT", "/workspaces/app/kv/labels", { value: ["a", "b"] })).body).toEqual({
      data: ["a", "b"],
    });
    expect((await call("GET", "/workspaces/app/kv/theme")).body).toEqual({ data: "dark" });
    expect(await call("DELETE", "/workspaces/app/kv/theme")).toEqual({
      status: 200,
      body: { data: "light" },
    });
    expect((await call("DELETE", "/workspaces/app/kv/lastSyncAt")).body).toEqual({ data: null });
  });

  it("answers 400 with the issues for a wrong value and writes nothing", async () => {
    const { call } = await serve();
    const refused = await call("PUT", "/workspaces/app/kv/theme", { value: "purple" });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("INVALID_VALUE");
    expect(refused.body.error.issues.length).toBeGreaterThan(0);
    expect((await call("PUT", "/workspaces/app/kv/notes", { value: 3 })).status).toBe(400);
    expect((await call("PUT", "/workspaces/app/kv/theme", { wrong: 1 })).status).toBe(400);
    expect((await call("GET", "/workspaces/app/kv")).body.data.theme).toBe("light");
  });

  it("answers 404 for an unknown workspace or key", async () => {
    const { call } = await serve();
    expect((await call("GET", "/workspaces/nope/kv")).status).toBe(404);
    expect((await call("GET", "/workspaces/app/kv/nope")).body.error.code).toBe("NOT_FOUND");
    expect((await call("PUT", "/workspaces/app/kv/toString", { value: 1 })).status).toBe(404);
  });

  it("writes the document a persisted reader of the namespace sees", async () => {
    const { kv, call } = await serve();
    await call("PUT", "/workspaces/app/kv/notes", { value: "stored" });
    const stored = await openPersistedDoc(kv.namespace("workspace-app"));
    expect((stored.doc.getMap("kv").get("notes") as { toString(): string }).toString()).toBe(
      "stored",
    );
    await stored.close();
  });

  it("reads a document it closed while idle back from the database", async () => {
    const { call } = await serve(undefined, 10);
    await call("PUT", "/workspaces/app/kv/notes", { value: "kept" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await call("GET", "/workspaces/app/kv/notes")).body).toEqual({ data: "kept" });
  });
});

describe("tables", () => {
  it("upserts, reads, lists and deletes rows, the path giving the id", async () => {
    const { call } = await serve();
    const row = { title: "Hello", body: "text", stars: 3 };
    expect(await call("PUT", "/workspaces/app/tables/posts/p1", { value: row })).toEqual({
      status: 200,
      body: { data: { id: "p1", ...row } },
    });
    await call("PUT", "/workspaces/app/tables/posts/p2", { value: { title: "Two", body: "" } });
    expect((await call("GET", "/workspaces/app/tables/posts")).body.data).toEqual([
      { id: "p1", ...row },
      { id: "p2", title: "Two", body: "", stars: 0 },
    ]);
    await call("PUT", "/workspaces/app/tables/posts/p1", { value: { title: "Changed" } });
    expect((await call("GET", "/workspaces/app/tables/posts/p1")).body.data.title).toBe("Changed");
    expect((await call("DELETE", "/workspaces/app/tables/posts/p1")).body).toEqual({
      data: { deleted: true },
    });
    expect((await call("DELETE", "/workspaces/app/tables/posts/p1")).body).toEqual({
      data: { deleted: false },
    });
    expect((await call("GET", "/workspaces/app/tables/posts/p1")).status).toBe(404);
  });

  it("refuses a row that does not validate, or names another id", async () => {
    const { call } = await serve();
    const wrong = await call("PUT", "/workspaces/app/tables/posts/p1", {
      value: { title: 5, body: "" },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.issues[0].path[0]).toBe("title");
    const other = await call("PUT", "/workspaces/app/tables/posts/p1", {
      value: { id: "p2", title: "t", body: "" },
    });
    expect(other.status).toBe(400);
    expect((await call("GET", "/workspaces/app/tables/posts")).body.data).toEqual([]);
    expect((await call("GET", "/workspaces/app/tables/nope")).status).toBe(404);
  });
});

describe("actions", () => {
  it("runs mutations by POST and queries by POST or GET, input validated", async () => {
    const { call } = await serve();
    expect(
      await call("POST", "/workspaces/app/actions/setTheme", { input: { theme: "dark" } }),
    ).toEqual({ status: 200, body: { data: null } });
    expect((await call("GET", "/workspaces/app/actions/getTheme")).body).toEqual({ data: "dark" });
    expect((await call("POST", "/workspaces/app/actions/getTheme", {})).body).toEqual({
      data: "dark",
    });
    const refused = await call("POST", "/workspaces/app/actions/setTheme", {
      input: { theme: "blue" },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.issues.length).toBeGreaterThan(0);
    expect((await call("GET", "/workspaces/app/actions/setTheme")).status).toBe(405);
    expect((await call("POST", "/workspaces/app/actions/nope", {})).status).toBe(404);
    expect(
      (await call("GET", `/workspaces/app/actions/countPosts?input=${encodeURIComponent("{")}`))
        .status,
    ).toBe(400);
  });
});

describe("tokens", () => {
  it("lets a read token read, not write; and a token of other namespaces nothing", async () => {
    const { call } = await serve(TOKENS);
    const read = "read-token-0123456789";
    expect((await call("GET", "/workspaces/app/kv", undefined, read)).status).toBe(200);
    expect((await call("PUT", "/workspaces/app/kv/theme", { value: "dark" }, read)).status).toBe(
      403,
    );
    expect(
      (await call("POST", "/workspaces/app/actions/setTheme", { input: { theme: "dark" } }, read))
        .status,
    ).toBe(403);
    expect((await call("GET", "/workspaces/app/actions/getTheme", undefined, read)).status).toBe(
      200,
    );
    expect((await call("GET", "/workspaces/app/kv")).status).toBe(401);
    expect(
      (await call("GET", "/workspaces/app/kv", undefined, "other-token-0123456789")).status,
    ).toBe(403);
    // A token of several namespaces needs no header: the path names the namespace.
    const write = "write-token-0123456789";
    expect((await call("PUT", "/workspaces/app/kv/theme", { value: "dark" }, write)).status).toBe(
      200,
    );
  });
});

it("describes the routes, with the columns' JSON Schemas, in the OpenAPI document", async () => {
  const { call } = await serve();
  const { body } = await call("GET", "/api/openapi.json");
  const paths = Object.keys(body.paths).filter((path) => path.startsWith("/workspaces/app"));
  expect(paths).toEqual(
    expect.arrayContaining([
      "/workspaces/app/sync",
      "/workspaces/app/kv",
      "/workspaces/app/kv/theme",
      "/workspaces/app/tables/posts",
      "/workspaces/app/tables/posts/{rowId}",
      "/workspaces/app/actions/setTheme",
    ]),
  );
  const theme = body.paths["/workspaces/app/kv/theme"].put;
  expect(theme.requestBody.content["application/json"].schema.properties.value).toMatchObject({
    enum: ["light", "dark"],
  });
  const setTheme = body.paths["/workspaces/app/actions/setTheme"];
  expect(setTheme.get).toBeUndefined();
  expect(
    setTheme.post.requestBody.content["application/json"].schema.properties.input.properties.theme,
  ).toMatchObject({ enum: ["light", "dark"] });
  expect(body.paths["/workspaces/app/actions/getTheme"].get.operationId).toBeTruthy();
});
