/**
 * Workspace sync through real servers on loopback ports: Node clients (`connectDoc`, y-websocket
 * over `ws`) converge after concurrent edits, catch up after being offline, keep everything
 * across a server restart, see REST writes and are seen by REST reads; tokens and namespaces as
 * on every route (a read token receives but cannot write); an update that breaks the schema is
 * repaired for everyone; two servers on one PostgreSQL database converge.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type * as Y from "yjs";
import { KvError } from "../../src/errors.js";
import type { TokenGrant } from "../../src/http/auth.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { id, integer, select, tags, text, ytext } from "../../src/workspace/columns.js";
import { defineWorkspace } from "../../src/workspace/define.js";
import { bindWorkspace } from "../../src/workspace/doc.js";
import { connectDoc, type RemoteDoc } from "../../src/workspace/remote.js";
import { startProxy, until } from "./helpers.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const dir = mkdtempSync(join(tmpdir(), "cellar-sync-"));
const schemas: string[] = [];

const app = defineWorkspace({
  id: "app",
  tables: { posts: { id: id(), title: text(), body: ytext() } },
  kv: {
    theme: select({ options: ["light", "dark"], default: "light" }),
    notes: ytext(),
    labels: tags(),
    count: integer({ default: 0 }),
    owner: text({ nullable: true }),
  },
});
const other = defineWorkspace({ id: "other", kv: { owner: text({ nullable: true }) } });

const WRITE = "write-token-0123456789";
const READ = "read-token-0123456789";
const ELSEWHERE = "elsewhere-token-0123456789";
const EVERYWHERE = "everywhere-token-0123456789";
const TOKENS: TokenGrant[] = [
  { token: EVERYWHERE, namespaces: ["*"], access: "admin" },
  { token: WRITE, namespaces: ["workspace-app", "workspace-other"], access: "write" },
  { token: READ, namespaces: ["workspace-app"], access: "read" },
  { token: ELSEWHERE, namespaces: ["tenant-a"], access: "write" },
];

const servers: RunningServer[] = [];
const remotes: RemoteDoc[] = [];

afterEach(async () => {
  for (const remote of remotes.splice(0)) await remote.close();
  for (const server of servers.splice(0)) await server.close();
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (schemas.length === 0) return;
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

async function serve(
  options: { db?: string; port?: number; tokens?: TokenGrant[] } = {},
): Promise<RunningServer> {
  const server = await startServer({
    db: options.db ?? ":memory:",
    port: options.port ?? 0,
    workspaces: [app, other],
    ...(options.tokens && { tokens: options.tokens }),
  });
  servers.push(server);
  return server;
}

function connect(url: string, options: { token?: string; doc?: Y.Doc; workspace?: string } = {}) {
  const remote = connectDoc(url, options.workspace ?? "app", {
    ...(options.token && { token: options.token }),
    ...(options.doc && { doc: options.doc }),
    maxBackoffTime: 200,
  });
  remotes.push(remote);
  return { remote, ...bindWorkspace(app, remote.doc) };
}

async function rest(
  server: RunningServer,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; json: { data?: unknown; error?: { code: string } } }> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      ...(body !== undefined && { "content-type": "application/json" }),
      ...(token && { authorization: `Bearer ${token}` }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: await response.json() };
}

const snapshot = (bound: ReturnType<typeof connect>) => ({
  kv: bound.$kv.$toJSON(),
  posts: bound.$tables.posts.toJSON(),
});

describe("two clients and a server", () => {
  it("converge after concurrent edits to the same text, tags and plain keys", async () => {
    const server = await serve();
    const a = connect(server.url);
    const b = connect(server.url);
    await Promise.all([a.remote.whenSynced, b.remote.whenSynced]);
    a.$kv.notes.set("hello world");
    a.$kv.labels.set(["red"]);
    await a.remote.flush();
    await until(() => b.$kv.notes.get().toString() === "hello world", "b to get the text");

    // Both edit before either hears of the other's edit.
    a.$kv.notes.get().insert(0, "A: ");
    b.$kv.notes.get().insert(11, "!");
    a.$kv.labels.get().push(["green"]);
    b.$kv.labels.get().push(["blue"]);
    a.$kv.theme.set("dark");
    b.$kv.count.set(7);
    a.$tables.posts.upsert({ id: "p1", title: "from a", body: "aaa" });
    b.$tables.posts.upsert({ id: "p2", title: "from b", body: "bbb" });
    await Promise.all([a.remote.flush(), b.remote.flush()]);

    await until(
      () => JSON.stringify(snapshot(a)) === JSON.stringify(snapshot(b)),
      "both clients to hold the same state",
    );
    expect(a.$kv.notes.get().toString()).toBe("A: hello world!");
    expect([...a.$kv.labels.get().toArray()].sort()).toEqual(["blue", "green", "red"]);
    expect(a.$kv.theme.get()).toBe("dark");
    expect(a.$kv.count.get()).toBe(7);
    const served = await rest(server, "GET", "/workspaces/app/kv");
    expect(served.json.data).toEqual(snapshot(a).kv);
    const posts = await rest(server, "GET", "/workspaces/app/tables/posts");
    expect(posts.json.data).toEqual(snapshot(a).posts);
  });

  it("catches a client up after it was offline, with what it edited meanwhile", async () => {
    const server = await serve();
    const proxy = await startProxy(server.url);
    try {
      const a = connect(server.url);
      const b = connect(proxy.url);
      await Promise.all([a.remote.whenSynced, b.remote.whenSynced]);
      a.$kv.notes.set("shared");
      await a.remote.flush();
      await until(() => b.$kv.notes.get().toString() === "shared", "b to get the text");

      proxy.offline();
      await until(() => !b.remote.synced, "b to notice it is offline");
      a.$kv.notes.get().insert(0, "online ");
      a.$kv.theme.set("dark");
      b.$kv.notes.get().insert(6, " offline");
      b.$kv.count.set(3);
      await a.remote.flush();
      expect(b.$kv.theme.get()).toBe("light");

      const flushed = b.remote.flush(); // waits for the connection
      proxy.online();
      await flushed;
      await until(
        () => JSON.stringify(snapshot(a)) === JSON.stringify(snapshot(b)),
        "both clients to converge",
      );
      expect(b.$kv.notes.get().toString()).toBe("online shared offline");
      expect(a.$kv.count.get()).toBe(3);
      expect(b.$kv.theme.get()).toBe("dark");
    } finally {
      await proxy.close();
    }
  });

  it("relays presence between clients", async () => {
    const server = await serve();
    const a = connect(server.url);
    const b = connect(server.url);
    await Promise.all([a.remote.whenSynced, b.remote.whenSynced]);
    a.remote.awareness.setLocalStateField("user", { name: "ada" });
    await until(
      () =>
        [...b.remote.awareness.getStates().values()].some(
          (state) => (state as { user?: { name: string } }).user?.name === "ada",
        ),
      "b to see a's presence",
    );
    await a.remote.close();
    await until(
      () => !b.remote.awareness.getStates().has(a.remote.doc.clientID),
      "a's presence to go when it leaves",
    );
  });
});

describe("REST and sync on one document", () => {
  it("shows a REST write to connected clients and a client's edit to REST reads", async () => {
    const server = await serve();
    const a = connect(server.url);
    await a.remote.whenSynced;
    const seen: string[] = [];
    a.$kv.theme.observe((theme) => seen.push(theme));

    const put = await rest(server, "PUT", "/workspaces/app/kv/theme", { value: "dark" });
    expect(put).toEqual({ status: 200, json: { data: "dark" } });
    await until(() => seen.includes("dark"), "the client to observe the REST write");

    await rest(server, "PUT", "/workspaces/app/kv/notes", { value: "written over REST" });
    await until(
      () => a.$kv.notes.get().toString() === "written over REST",
      "the client's text to follow",
    );
    a.$kv.notes.get().insert(0, ">> ");
    a.$tables.posts.upsert({ id: "p1", title: "t", body: "b" });
    await a.remote.flush();
    expect((await rest(server, "GET", "/workspaces/app/kv/notes")).json.data).toBe(
      ">> written over REST",
    );
    expect((await rest(server, "GET", "/workspaces/app/tables/posts/p1")).json.data).toEqual({
      id: "p1",
      title: "t",
      body: "b",
    });

    const reset = await rest(server, "DELETE", "/workspaces/app/kv/theme");
    expect(reset.json.data).toBe("light");
    await until(() => a.$kv.theme.get() === "light", "the client to see the reset");
    const bad = await rest(server, "PUT", "/workspaces/app/kv/theme", { value: "purple" });
    expect(bad.status).toBe(400);
    expect(a.$kv.theme.get()).toBe("light");
  });

  it("repairs an update that breaks the schema for every client, its sender included", async () => {
    const server = await serve();
    const a = connect(server.url);
    const b = connect(server.url);
    await Promise.all([a.remote.whenSynced, b.remote.whenSynced]);
    a.$kv.theme.set("dark");
    await a.remote.flush();
    // Past the helpers, which refuse it: straight into the shared map.
    a.remote.doc.getMap("kv").set("theme", 42);
    a.remote.doc.getMap("kv").set("count", "many");
    await a.remote.flush();
    await until(() => a.remote.doc.getMap("kv").get("theme") === "dark", "the sender's repair");
    expect(a.remote.doc.getMap("kv").get("count")).toBeUndefined();
    await until(() => b.$kv.theme.get() === "dark", "b to hold the repaired value");
    expect(b.remote.doc.getMap("kv").get("count")).toBeUndefined();
    expect((await rest(server, "GET", "/workspaces/app/kv/theme")).json.data).toBe("dark");
  });
});

describe("restarts", () => {
  it("keeps everything a client had acknowledged across a server restart", async () => {
    const db = join(dir, "restart.db");
    const first = await serve({ db });
    const port = Number(new URL(first.url).port);
    const a = connect(first.url);
    await a.remote.whenSynced;
    a.$kv.notes.set("before the restart");
    a.$kv.labels.set(["kept"]);
    a.$tables.posts.upsert({ id: "p1", title: "kept", body: "body" });
    await a.remote.flush();
    servers.splice(servers.indexOf(first), 1);
    await first.close();

    // The client reconnects on its own to the server that comes back on the same port.
    a.$kv.notes.get().insert(0, "offline: ");
    const second = await serve({ db, port });
    await a.remote.flush();
    const b = connect(second.url);
    await b.remote.whenSynced;
    expect(snapshot(b)).toEqual(snapshot(a));
    expect(b.$kv.notes.get().toString()).toBe("offline: before the restart");
    expect(b.$tables.posts.get("p1")?.title).toBe("kept");
  });

  it("serves one workspace from two servers on one PostgreSQL database", async () => {
    const schema = `cellar_sync_${randomBytes(4).toString("hex")}`;
    schemas.push(schema);
    const db = `${POSTGRES}?schema=${schema}`;
    const one = await serve({ db });
    const two = await serve({ db });
    const a = connect(one.url);
    const b = connect(two.url);
    await Promise.all([a.remote.whenSynced, b.remote.whenSynced]);
    a.$kv.notes.set("from one");
    b.$kv.labels.set(["from two"]);
    await Promise.all([a.remote.flush(), b.remote.flush()]);
    await until(() => b.$kv.notes.get().toString() === "from one", "server two's client");
    await until(() => a.$kv.labels.get().length === 1, "server one's client");
    a.$kv.notes.get().insert(0, "a");
    b.$kv.notes.get().insert(0, "b");
    await rest(two, "PUT", "/workspaces/app/kv/theme", { value: "dark" });
    await until(
      () =>
        JSON.stringify(snapshot(a)) === JSON.stringify(snapshot(b)) && a.$kv.theme.get() === "dark",
      "both servers' clients to converge",
    );
    expect(a.$kv.notes.get().length).toBe("from one".length + 2);
  });
});

describe("tokens and namespaces", () => {
  it("lets a read token receive, and closes it with 4403 when it writes", async () => {
    const server = await serve({ tokens: TOKENS });
    const writer = connect(server.url, { token: WRITE });
    await writer.remote.whenSynced;
    writer.$kv.notes.set("for readers");
    await writer.remote.flush();

    const reader = connect(server.url, { token: READ });
    await reader.remote.whenSynced;
    expect(reader.$kv.notes.get().toString()).toBe("for readers");
    await reader.remote.flush(); // its own step 2 held nothing new: still connected
    writer.$kv.theme.set("dark");
    await until(() => reader.$kv.theme.get() === "dark", "the reader to receive a change");

    reader.$kv.notes.get().insert(0, "vandal: ");
    await expect(reader.remote.flush()).rejects.toMatchObject({
      code: "FORBIDDEN",
      message: expect.stringContaining("read access"),
    });
    await writer.remote.flush();
    expect(
      (await rest(server, "GET", "/workspaces/app/kv/notes", undefined, WRITE)).json.data,
    ).toBe("for readers");
    const put = await rest(server, "PUT", "/workspaces/app/kv/theme", { value: "light" }, READ);
    expect(put.status).toBe(403);
  });

  it("refuses bad tokens, other namespaces and unknown workspaces with close codes", async () => {
    const server = await serve({ tokens: TOKENS });
    const refusal = async (options: { token?: string; workspace?: string }) => {
      const { remote } = connect(server.url, options);
      const error = await remote.whenSynced.then(
        () => null,
        (e: KvError) => e,
      );
      return error && { code: error.code, kv: error instanceof KvError };
    };
    expect(await refusal({})).toEqual({ code: "UNAUTHORIZED", kv: true });
    expect(await refusal({ token: "not-a-token-0123456789" })).toEqual({
      code: "UNAUTHORIZED",
      kv: true,
    });
    expect(await refusal({ token: ELSEWHERE })).toEqual({ code: "FORBIDDEN", kv: true });
    expect(await refusal({ token: READ, workspace: "other" })).toEqual({
      code: "FORBIDDEN",
      kv: true,
    });
    // Which workspaces exist is told only to a token that could use them.
    expect(await refusal({ token: WRITE, workspace: "nope" })).toEqual({
      code: "FORBIDDEN",
      kv: true,
    });
    expect(await refusal({ token: EVERYWHERE, workspace: "nope" })).toEqual({
      code: "NOT_FOUND",
      kv: true,
    });
    // A token with several namespaces needs no header: the path names the namespace.
    expect(await refusal({ token: WRITE, workspace: "other" })).toBeNull();
  });

  it("closes a connection that sends more than the body limit with 1009", async () => {
    const server = await startServer({
      db: ":memory:",
      port: 0,
      workspaces: [app],
      maxBodySize: 64 * 1024,
    });
    servers.push(server);
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/workspaces/app/sync`);
    await new Promise((resolve) => ws.once("open", resolve));
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.send(new Uint8Array(100 * 1024));
    expect(await closed).toBe(1009);
  });

  it("closes a connection that sends a malformed message with 4400", async () => {
    const server = await serve();
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/workspaces/app/sync`);
    await new Promise((resolve) => ws.once("open", resolve));
    const closed = new Promise<[number, string]>((resolve) =>
      ws.once("close", (code, reason) => resolve([code, String(reason)])),
    );
    ws.send(new Uint8Array([0, 2, 200, 1, 2, 3]));
    const [code, reason] = await closed;
    expect(code).toBe(4400);
    expect(reason).toMatch(/^INVALID_(REQUEST|VALUE): /);
  });
});
