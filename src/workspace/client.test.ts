import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setupWSConnection } from "@y/websocket-server/utils";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { z } from "zod";
import { KvError } from "../errors.js";
import { openKv } from "../open.js";
import { startServer } from "../server/serve.js";
import {
  createClient,
  date,
  dateWithTimeZone,
  defineMutation,
  defineQuery,
  defineWorkspace,
  id,
  select,
  tags,
  text,
  ytext,
} from "../workspace.js";

const app = defineWorkspace({
  id: "app",
  tables: { posts: { id: id(), title: text(), content: ytext() } },
  kv: {
    theme: select({ options: ["light", "dark"], default: "light" }),
    lastSyncAt: date({ nullable: true }),
    notes: ytext(),
    labels: tags(),
  },
  actions: ({ kv }) => ({
    setTheme: defineMutation({
      input: z.object({ theme: z.enum(["light", "dark"]) }),
      handler: ({ theme }) => kv.theme.set(theme),
    }),
    getTheme: defineQuery({ handler: () => kv.theme.get() }),
  }),
});

const dir = mkdtempSync(join(tmpdir(), "cellar-workspace-client-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("createClient(workspace, { kv })", () => {
  it("keeps everything across a restart of a SQLite file", async () => {
    const path = join(dir, "restart.sqlite");
    const kv = await openKv(path);
    const client = await createClient(app, { kv });
    await client.whenSynced;
    expect(client.id).toBe("app");
    await client.actions.setTheme({ theme: "dark" });
    client.$kv.lastSyncAt.set(dateWithTimeZone("2025-06-01T12:00:00Z", "Europe/Paris"));
    client.$kv.notes.set("collaborative notes");
    client.$kv.labels.set(["x", "y"]);
    client.$tables.posts.upsert({ id: "p1", title: "Hello", content: "Body" });
    await client.flush();
    await client.close();
    await kv.close();

    const reopened = await openKv(path);
    const again = await createClient(app, { kv: reopened });
    expect(await again.actions.getTheme()).toBe("dark");
    expect(again.$kv.$toJSON()).toEqual({
      theme: "dark",
      lastSyncAt: { date: "2025-06-01T12:00:00.000Z", timeZone: "Europe/Paris" },
      notes: "collaborative notes",
      labels: ["x", "y"],
    });
    expect(again.$tables.posts.getJSON("p1")).toEqual({
      id: "p1",
      title: "Hello",
      content: "Body",
    });
    await again.close();
    await reopened.close();
  });

  it("stores the document in namespace workspace-{id}, given the root or that namespace", async () => {
    const kv = await openKv();
    const client = await createClient(app, { kv });
    client.$kv.theme.set("dark");
    await client.flush();
    await client.close();
    expect(
      (
        await kv
          .namespace("workspace-app")
          .list({ prefix: ["ydoc"] })
          .next()
      ).done,
    ).toBe(false);
    expect((await kv.list({ prefix: ["ydoc"] }).next()).done).toBe(true);
    const view = await createClient(app, { kv: kv.namespace("workspace-app") });
    expect(view.$kv.theme.get()).toBe("dark");
    await view.close();
    const error = await createClient(app, { kv: kv.namespace("other") }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KvError);
    expect((error as KvError).code).toBe("INVALID_ARGUMENT");
    expect((error as Error).message).toMatch(/namespace "workspace-app"/);
    await kv.close();
  });

  it("two clients of one database see each other's changes through its change feed", async () => {
    const kv = await openKv(join(dir, "two.sqlite"));
    const a = await createClient(app, { kv });
    const b = await createClient(app, { kv });
    const seen = new Promise<string>((resolve) => {
      b.$kv.notes.observe((text) => {
        if (text.toString().includes("from a")) resolve(text.toString());
      });
    });
    a.$kv.notes.set("from a");
    expect(await seen).toBe("from a");
    const themed = new Promise<string>((resolve) => a.$kv.theme.observe(resolve));
    b.$kv.theme.set("dark");
    expect(await themed).toBe("dark");
    await a.close();
    await b.close();
    await kv.close();
  });

  it("refuses options it cannot use", async () => {
    const none = await createClient(app, {} as never).catch((e: unknown) => e);
    expect((none as KvError).code).toBe("INVALID_ARGUMENT");
  });
});

describe("createClient(workspace, { url })", () => {
  it("syncs through a y-websocket server: two clients converge on concurrent edits", async () => {
    // The reference y-websocket server on a real port: the client speaks plain y-protocols.
    const server = createServer();
    const sockets = new WebSocketServer({ server });
    sockets.on("connection", (socket, request) => setupWSConnection(socket, request));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}`;
    const a = await createClient(app, { url });
    const b = await createClient(app, { url });
    try {
      await Promise.all([a.whenSynced, b.whenSynced]);
      a.$kv.notes.set("from a. ");
      b.$kv.notes.set("from b. ");
      a.$kv.labels.set(["x"]);
      b.$kv.labels.set(["y"]);
      await Promise.all([a.flush(), b.flush()]);
      await Promise.all([a.flush(), b.flush()]);
      const converged = () =>
        JSON.stringify(a.$kv.$toJSON()) === JSON.stringify(b.$kv.$toJSON()) &&
        a.$kv.notes.toJSON().length === "from a. from b. ".length;
      if (!converged()) {
        await new Promise<void>((resolve) => {
          const check = () => converged() && resolve();
          a.$kv.$observe(check);
          b.$kv.$observe(check);
        });
      }
      expect(a.$kv.notes.toJSON()).toContain("from a. ");
      expect(a.$kv.notes.toJSON()).toContain("from b. ");
      expect([...a.$kv.labels.toJSON()].sort()).toEqual(["x", "y"]);
      expect(await b.actions.getTheme()).toBe("light");
    } finally {
      await a.close();
      await b.close();
      sockets.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("createClient(workspace, { url, token }) with a Cellar server", () => {
  it("converges with another client, is repaired when it writes a bad value, and is refused a bad token", async () => {
    const token = "workspace-client-token-0123456789";
    const server = await startServer({
      db: ":memory:",
      port: 0,
      workspaces: [app],
      tokens: [{ token, namespaces: ["workspace-app"], access: "write" }],
    });
    const a = await createClient(app, { url: server.url, token });
    const b = await createClient(app, { url: server.url, token });
    try {
      await Promise.all([a.whenSynced, b.whenSynced]);
      await a.actions.setTheme({ theme: "dark" });
      a.$tables.posts.upsert({ id: "p1", title: "From a", content: "text" });
      a.doc.getMap("kv").set("lastSyncAt", "not a date");
      await a.flush();
      const settled = () =>
        b.$kv.theme.get() === "dark" &&
        b.$tables.posts.get("p1") !== null &&
        !a.doc.getMap("kv").has("lastSyncAt");
      if (!settled()) {
        await new Promise<void>((resolve) => {
          const check = () => settled() && resolve();
          a.$kv.$observe(check);
          b.$kv.$observe(check);
          b.$tables.posts.observe(check);
        });
      }
      expect(b.$tables.posts.getJSON("p1")).toEqual({ id: "p1", title: "From a", content: "text" });
      expect(b.doc.getMap("kv").has("lastSyncAt")).toBe(false);
      const refused = await createClient(app, { url: server.url, token: "wrong-token-0123456789" });
      const error = await refused.whenSynced.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(KvError);
      expect((error as KvError).code).toBe("UNAUTHORIZED");
      await refused.close();
    } finally {
      await a.close();
      await b.close();
      await server.close();
    }
  });
});
