import { type } from "arktype";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  boolean,
  date,
  defineKv,
  defineStore,
  integer,
  json,
  select,
  tags,
  text,
} from "../../src/index.js";
import type { RunningServer, TokenGrant } from "../../src/server/index.js";
import { type Reply, type Send, send, serve } from "./helpers.js";

const settings = {
  theme: select({ options: ["light", "dark"], default: "light" }),
  locale: text({ default: "en-US" }),
  page_size: integer({ default: 20 }),
  beta: boolean({ default: false }),
  last_sync: date({ nullable: true }),
  labels: tags({ default: [] }),
  editor: json({ schema: z.object({ font_size: z.number().min(8) }), default: { font_size: 14 } }),
};

const prefs = defineStore(
  "user_prefs",
  z.object({ theme: z.enum(["light", "dark"]), font_size: z.number().int() }),
);
const cursors = defineStore("cursors", v.object({ x: v.number(), y: v.number() }));
const sessions = defineStore("sessions", type({ user: "string", "roles?": "string[]" }));

function expectInvalid(reply: Reply, paths: (string | number)[][]): void {
  expect(reply.status, reply.text).toBe(400);
  expect(reply.json.error).toMatchObject({ code: "INVALID_VALUE", message: expect.any(String) });
  expect(reply.json.error.issues.map((i: { path: unknown }) => i.path).sort()).toEqual(paths);
  for (const issue of reply.json.error.issues) expect(issue.message).toEqual(expect.any(String));
}

describe("typed values and stores over HTTP", () => {
  let server: RunningServer;
  const call = (path: string, options: Send = {}) => send(server.url, path, options);
  const put = (path: string, body: unknown) => call(path, { method: "PUT", body });

  beforeAll(async () => {
    server = await serve({
      stores: [prefs, cursors, sessions],
      workspaces: { app: settings, "*": settings },
    });
  });
  afterAll(() => server.close());

  describe("workspace values", () => {
    it("reads every value, defaults included", async () => {
      const reply = await call("/workspaces/app/kv");
      expect([reply.status, reply.json]).toEqual([
        200,
        {
          data: {
            theme: "light",
            locale: "en-US",
            page_size: 20,
            beta: false,
            last_sync: null,
            labels: [],
            editor: { font_size: 14 },
          },
        },
      ]);
    });

    it("writes, reads and resets one value", async () => {
      expect((await put("/workspaces/app/kv/theme", { value: "dark" })).json).toEqual({
        data: "dark",
      });
      expect((await call("/workspaces/app/kv/theme")).json).toEqual({ data: "dark" });
      const when = { date: "2025-06-01T12:00:00.000Z", timeZone: "Europe/Paris" };
      expect((await put("/workspaces/app/kv/last_sync", { value: when })).json).toEqual({
        data: when,
      });
      expect((await call("/workspaces/app/kv/last_sync")).json).toEqual({ data: when });
      const reset = await call("/workspaces/app/kv/theme", { method: "DELETE" });
      expect([reset.status, reset.json]).toEqual([200, { data: "light" }]);
      expect((await call("/workspaces/app/kv/theme")).json).toEqual({ data: "light" });
    });

    it("keeps each workspace in its own namespace", async () => {
      await put("/workspaces/team-1/kv/locale", { value: "de-DE" });
      expect((await call("/workspaces/team-2/kv/locale")).json).toEqual({ data: "en-US" });
      const stored = defineKv(server.kv.namespace("workspace-team-1"), settings);
      expect(await stored.locale.get()).toBe("de-DE");
    });

    it("answers 400 with the issues for an invalid value, and writes nothing", async () => {
      await put("/workspaces/app/kv/page_size", { value: 30 });
      expectInvalid(await put("/workspaces/app/kv/page_size", { value: "many" }), [[]]);
      expectInvalid(await put("/workspaces/app/kv/editor", { value: { font_size: 2 } }), [
        ["font_size"],
      ]);
      expectInvalid(
        await put("/workspaces/app/kv/last_sync", { value: { date: "soon", timeZone: "UTC" } }),
        [["date"]],
      );
      expect((await call("/workspaces/app/kv/page_size")).json).toEqual({ data: 30 });
      const shapeless = await put("/workspaces/app/kv/page_size", { nope: 1 });
      expect([shapeless.status, shapeless.json.error.code]).toEqual([400, "INVALID_REQUEST"]);
    });

    it("answers 404 for unknown workspaces and keys", async () => {
      expect((await call("/workspaces/app/kv/colour")).status).toBe(404);
      expect((await call("/workspaces/~bad/kv")).status).toBe(404);
    });
  });

  describe("stores", () => {
    it("writes, reads and deletes entries", async () => {
      const written = await put("/api/stores/user_prefs/ada", {
        value: { theme: "dark", font_size: 14 },
      });
      expect(written.json).toEqual({
        id: "ada",
        value: { theme: "dark", font_size: 14 },
        versionstamp: expect.any(String),
      });
      expect((await call("/api/stores/user_prefs/ada")).json).toEqual(written.json);
      expect((await call("/api/stores/user_prefs/ada", { method: "DELETE" })).json).toEqual({
        ok: true,
      });
      expect((await call("/api/stores/user_prefs/ada")).json).toEqual({
        id: "ada",
        value: null,
        versionstamp: null,
      });
    });

    it("lists entries by id prefix, a page at a time", async () => {
      for (const id of ["user:1", "user:2", "user:3", "team:1"])
        await put(`/api/stores/cursors/${id}`, { value: { x: 1, y: 2 } });
      const first = await call("/api/stores/cursors?prefix=user%3A&limit=2");
      expect(first.json.entries.map((e: { id: string }) => e.id)).toEqual(["user:1", "user:2"]);
      const second = await call(
        `/api/stores/cursors?prefix=user%3A&limit=2&cursor=${first.json.cursor}`,
      );
      expect(second.json).toEqual({
        entries: [{ id: "user:3", value: { x: 1, y: 2 }, versionstamp: expect.any(String) }],
        cursor: null,
      });
    });

    it("takes ids with any characters, percent-encoded", async () => {
      await put("/api/stores/cursors/a%2Fb%20c", { value: { x: 0, y: 0 } });
      expect((await call("/api/stores/cursors/a%2Fb%20c")).json.id).toBe("a/b c");
    });

    it("answers 400 with the issues for an invalid value, for each schema library", async () => {
      expectInvalid(
        await put("/api/stores/user_prefs/bob", { value: { theme: "blue", font_size: 1.5 } }),
        [["font_size"], ["theme"]],
      );
      expectInvalid(await put("/api/stores/cursors/bob", { value: { x: "1" } }), [["x"], ["y"]]);
      expectInvalid(await put("/api/stores/sessions/bob", { value: { user: 1 } }), [["user"]]);
      expect((await call("/api/stores/user_prefs/bob")).json.value).toBeNull();
      expect((await call("/api/stores/cursors/bob")).json.value).toBeNull();
    });

    it("expires entries written with expireIn", async () => {
      const reply = await put("/api/stores/sessions/s1", {
        value: { user: "ada" },
        expireIn: 60_000,
      });
      expect(reply.status).toBe(200);
      const entry = await server.kv.get(["sessions", "s1"], { metadata: true });
      expect(entry.metadata?.expiresAt).toBeGreaterThan(Date.now());
      expect(
        (await put("/api/stores/sessions/s2", { value: { user: "ada" }, expireIn: -1 })).status,
      ).toBe(400);
    });

    it("answers 404 for an unknown store", async () => {
      expect((await call("/api/stores/nope/x")).status).toBe(404);
    });

    it("works in the request's namespace", async () => {
      await put("/api/stores/user_prefs/ada", { value: { theme: "light", font_size: 12 } });
      const scoped = await call("/api/stores/user_prefs/ada", { namespace: "tenant-a" });
      expect(scoped.json.value).toBeNull();
      expect(await prefs.bind(server.kv).get("ada")).toEqual({ theme: "light", font_size: 12 });
    });
  });

  it("puts the JSON Schemas of stores and typed values in the OpenAPI document", async () => {
    const doc = (await call("/api/openapi.json")).json;
    expect(doc.components.schemas.store_user_prefs).toMatchObject({
      type: "object",
      properties: { theme: { enum: ["light", "dark"] }, font_size: { type: "integer" } },
    });
    expect(doc.components.schemas.store_cursors).toMatchObject({
      properties: { x: { type: "number" } },
    });
    expect(doc.components.schemas.store_sessions).toMatchObject({ required: ["user"] });
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/api/stores/user_prefs",
        "/api/stores/user_prefs/{id}",
        "/workspaces/app/kv",
        "/workspaces/app/kv/theme",
        "/workspaces/{id}/kv/editor",
      ]),
    );
    const themeBody =
      doc.paths["/workspaces/app/kv/theme"].put.requestBody.content["application/json"].schema;
    expect(themeBody.properties.value).toEqual({
      type: "string",
      enum: ["light", "dark"],
      default: "light",
    });
  });
});

describe("typed routes and tokens", () => {
  let server: RunningServer;
  const tokens: TokenGrant[] = [
    { token: "reader-token-123456", namespaces: ["workspace-app"], access: "read" },
    { token: "writer-token-123456", namespaces: ["workspace-app"], access: "write" },
  ];
  beforeAll(async () => {
    server = await serve({
      tokens,
      stores: [prefs],
      workspaces: { app: settings, other: settings },
    });
  });
  afterAll(() => server.close());

  it("needs a token, the workspace's namespace and write access to write", async () => {
    expect((await send(server.url, "/workspaces/app/kv")).status).toBe(401);
    expect(
      (await send(server.url, "/workspaces/other/kv", { token: "writer-token-123456" })).status,
    ).toBe(403);
    const denied = await send(server.url, "/workspaces/app/kv/theme", {
      method: "PUT",
      body: { value: "dark" },
      token: "reader-token-123456",
    });
    expect(denied.status).toBe(403);
    const allowed = await send(server.url, "/workspaces/app/kv/theme", {
      method: "PUT",
      body: { value: "dark" },
      token: "writer-token-123456",
    });
    expect(allowed.json).toEqual({ data: "dark" });
    expect(
      (await send(server.url, "/workspaces/app/kv/theme", { token: "reader-token-123456" })).json,
    ).toEqual({ data: "dark" });
  });
});

describe("camelCase names over HTTP", () => {
  let server: RunningServer;
  const call = (path: string, options: Send = {}) => send(server.url, path, options);
  const put = (path: string, body: unknown) => call(path, { method: "PUT", body });

  beforeAll(async () => {
    server = await serve({
      stores: [defineStore("userPrefs", z.object({ fontSize: z.number() }))],
      workspaces: {
        app: {
          lastSyncAt: date({ nullable: true }),
          betaFeatures: boolean({ default: false }),
          userPrefs: json({
            schema: z.object({ notifications: z.boolean(), fontSize: z.number() }),
            default: { notifications: true, fontSize: 14 },
          }),
        },
      },
    });
  });
  afterAll(() => server.close());

  it("serves workspace keys by their camelCase names", async () => {
    const when = { date: "2025-06-01T12:00:00.000Z", timeZone: "UTC" };
    expect((await put("/workspaces/app/kv/lastSyncAt", { value: when })).json).toEqual({
      data: when,
    });
    expect((await put("/workspaces/app/kv/betaFeatures", { value: true })).json).toEqual({
      data: true,
    });
    expect((await call("/workspaces/app/kv")).json).toEqual({
      data: {
        lastSyncAt: when,
        betaFeatures: true,
        userPrefs: { notifications: true, fontSize: 14 },
      },
    });
    const reset = await call("/workspaces/app/kv/betaFeatures", { method: "DELETE" });
    expect(reset.json).toEqual({ data: false });
    expect((await call("/workspaces/app/kv/lastsyncat")).status).toBe(404);
  });

  it("serves a camelCase store", async () => {
    const written = await put("/api/stores/userPrefs/ada", { value: { fontSize: 16 } });
    expect(written.status, written.text).toBe(200);
    const read = await call("/api/stores/userPrefs/ada");
    expect(read.json).toMatchObject({ id: "ada", value: { fontSize: 16 } });
    expect((await call("/api/stores/userPrefs")).json.entries).toHaveLength(1);
  });
});
