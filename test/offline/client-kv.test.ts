/**
 * The client store against a real server on a loopback port: replication both ways, writes
 * while offline (through a proxy whose network can be cut), the outbox and replica surviving a
 * restart on a SQLite file, conflict policies, refusals, resume and snapshots.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { z } from "zod";
import { type ClientKv, createClientKv, defineStore, type KvKey } from "../../src/index.js";
import type { TokenGrant } from "../../src/server/index.js";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/serve.js";
import { startProxy, type Proxy as TcpProxy, until } from "../workspace/helpers.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-offline-"));
const servers: RunningServer[] = [];
const clients: ClientKv[] = [];
const proxies: TcpProxy[] = [];

const WRITE = "write-token-0123456789";
const READ = "read-token-0123456789";
const TOKENS: TokenGrant[] = [
  { token: WRITE, namespaces: ["app"], access: "write" },
  { token: READ, namespaces: ["app"], access: "read" },
];

afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
  for (const server of servers.splice(0)) await server.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const file = (name: string) => join(dir, `${name}-${files++}.db`);

async function serve(options: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const server = await startServer({ db: file("server"), port: 0, ...options });
  servers.push(server);
  return server;
}

async function client(url: string, options: Partial<Parameters<typeof createClientKv>[0]> = {}) {
  const kv = await createClientKv({ url, reconnectDelay: 20, maxReconnectDelay: 200, ...options });
  clients.push(kv);
  return kv;
}

async function proxyTo(server: RunningServer): Promise<TcpProxy> {
  const proxy = await startProxy(server.url);
  proxies.push(proxy);
  return proxy;
}

const shown = (kv: ClientKv, key: KvKey) => kv.peek(key).value;

describe("client store", () => {
  it("shows a local write at once, then the server's versionstamp, and replicates to others", async () => {
    const server = await serve();
    const a = await client(server.url);
    const b = await client(server.url);
    await Promise.all([a.whenSynced(), b.whenSynced()]);
    const seen: unknown[] = [];
    b.subscribe(["todo", 1], (event) => seen.push(event.entry.value));

    const write = await a.set(["todo", 1], { title: "milk", n: 1n });
    const local = a.peek(["todo", 1]);
    expect(local).toMatchObject({
      exists: true,
      value: { title: "milk", n: 1n },
      pending: true,
      versionstamp: null,
    });
    const outcome = await write.confirmed;
    expect(outcome.ok).toBe(true);
    const confirmed = a.peek(["todo", 1]);
    expect(confirmed.pending).toBe(false);
    expect(confirmed.versionstamp).toBe(outcome.ok && outcome.versionstamp);
    expect((await server.kv.get(["todo", 1])).value).toEqual({ title: "milk", n: 1n });

    await until(() => shown(b, ["todo", 1]) !== null, "b to receive the write");
    expect(b.peek(["todo", 1])).toMatchObject({ value: { title: "milk", n: 1n }, pending: false });
    expect(seen).toEqual([{ title: "milk", n: 1n }]);

    // A write on the server reaches both; a delete too.
    await server.kv.set(["todo", 2], "bread");
    await until(
      () => shown(a, ["todo", 2]) === "bread" && shown(b, ["todo", 2]) === "bread",
      "server write",
    );
    await server.kv.delete(["todo", 1]);
    await until(() => !a.peek(["todo", 1]).exists && !b.peek(["todo", 1]).exists, "server delete");
    expect(a.peekList({ prefix: ["todo"] }).map((e) => e.value)).toEqual(["bread"]);
  });

  it("starts from a snapshot of what the server holds under its prefixes only", async () => {
    const server = await serve();
    await server.kv.set(["todo", 1], "a");
    await server.kv.set(["todo", 2], "b");
    await server.kv.set(["other"], "not replicated");
    const a = await client(server.url, { prefixes: [["todo"]] });
    await a.whenSynced();
    expect(a.peekList({ prefix: ["todo"] }).map((e) => e.value)).toEqual(["a", "b"]);
    expect(() => a.peek(["other"])).toThrow(/outside the prefixes/);
    await expect(a.set(["other"], 1)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("lists the view in key order, pending writes merged in, forwards and in reverse", async () => {
    const server = await serve();
    await server.kv.set(["l", 1], "one");
    await server.kv.set(["l", 3], "three");
    const a = await client(server.url, { manual: true });
    a.connect();
    await a.whenSynced();
    a.disconnect();
    await a.set(["l", 2], "two (pending)");
    await a.set(["l", 0], "zero (pending)");
    await a.delete(["l", 3]);
    const values = (options = {}) => a.peekList({ prefix: ["l"] }, options).map((e) => e.value);
    expect(values()).toEqual(["zero (pending)", "one", "two (pending)"]);
    expect(values({ reverse: true, limit: 2 })).toEqual(["two (pending)", "one"]);
  });

  it("writes offline, survives a restart with its outbox and replica, and converges when back", async () => {
    const server = await serve();
    const proxy = await proxyTo(server);
    const storage = file("replica");
    let a = await client(proxy.url, { storage });
    const b = await client(server.url);
    await a.set(["doc"], "v1");
    await a.whenSynced();

    proxy.offline();
    await until(() => a.status.state !== "online", "a to notice it is offline");
    await a.set(["doc"], "offline edit");
    await a.set(["note", 1], "written offline");
    expect(a.status.pending).toBe(2);
    expect(shown(a, ["doc"])).toBe("offline edit");

    // A restart while offline: the replica and the outbox are on disk.
    await a.close();
    clients.splice(clients.indexOf(a), 1);
    a = await client(proxy.url, { storage });
    expect(shown(a, ["doc"])).toBe("offline edit");
    expect(a.status.pending).toBe(2);
    expect(a.outbox().map((w) => w.mutations[0]!.key)).toEqual([["doc"], ["note", 1]]);

    proxy.online();
    await a.whenSynced();
    expect((await server.kv.get(["doc"])).value).toBe("offline edit");
    await until(() => shown(b, ["note", 1]) === "written offline", "b to converge");
    expect(a.status.pending).toBe(0);
  });

  it("resumes from its last versionstamp after missing changes", async () => {
    const server = await serve();
    const proxy = await proxyTo(server);
    const a = await client(proxy.url);
    await a.whenSynced();
    proxy.offline();
    await until(() => a.status.state !== "online", "offline");
    for (let i = 0; i < 50; i++) await server.kv.set(["n", i], i);
    await server.kv.set(["n", 0], "changed");
    proxy.online();
    await until(() => a.peekList({ prefix: ["n"] }).length === 50, "catch-up");
    await a.whenSynced();
    expect(shown(a, ["n", 0])).toBe("changed");
    expect(a.status.lastSynced).toBe(await server.kv.currentVersionstamp());
  });

  it("reloads from a snapshot when the change log no longer reaches its resume point", async () => {
    const server = await serve({ openOptions: { changeLog: { size: 5 } } });
    const proxy = await proxyTo(server);
    const a = await client(proxy.url);
    for (let i = 0; i < 5; i++) await server.kv.set(["c", i], i);
    await until(() => a.peekList({ prefix: ["c"] }).length === 5, "the first five");
    await a.whenSynced();
    proxy.offline();
    await until(() => a.status.state !== "online", "offline");
    // Far more commits than the log keeps, deletes among them.
    await server.kv.delete(["c", 0]);
    for (let i = 0; i < 30; i++) await server.kv.set(["c", 10 + (i % 10)], i);
    await server.kv.delete(["c", 11]);
    const mine = await a.set(["c", "offline"], "kept");
    proxy.online();
    expect((await mine.confirmed).ok).toBe(true);
    await a.whenSynced();
    const expected = [];
    for await (const entry of server.kv.list({ prefix: ["c"] }))
      expected.push([entry.key, entry.value]);
    expect(a.peekList({ prefix: ["c"] }).map((e) => [e.key, e.value])).toEqual(expected);
    expect(a.peek(["c", 0]).exists).toBe(false);
  });

  it("starts over from a snapshot when its resume point is past the server's head", async () => {
    const first = await serve();
    const storage = file("moved");
    let a = await client(first.url, { storage });
    for (let i = 0; i < 5; i++) await (await a.set(["gone", i], i)).confirmed;
    await a.whenSynced();
    await a.close();
    clients.splice(clients.indexOf(a), 1);
    // Another database, younger than the replica's resume point.
    const second = await serve();
    await second.kv.set(["fresh"], "here");
    a = await client(second.url, { storage });
    await a.whenSynced();
    expect(a.peekList({ prefix: ["gone"] })).toEqual([]);
    expect(shown(a, ["fresh"])).toBe("here");
  });

  it("rejects a conflicting write by default: the server's entry stays, the conflict is reported", async () => {
    const server = await serve();
    const proxy = await proxyTo(server);
    const a = await client(proxy.url);
    const b = await client(server.url);
    await a.set(["doc"], "base");
    await a.whenSynced();
    await until(() => shown(b, ["doc"]) === "base", "b has the base");

    proxy.offline();
    await until(() => a.status.state !== "online", "offline");
    const mine = await a.set(["doc"], "a's edit");
    await (await b.set(["doc"], "b's edit")).confirmed;
    proxy.online();
    const outcome = await mine.confirmed;
    expect(outcome).toMatchObject({ ok: false, error: { code: "CONFLICT" } });
    expect(!outcome.ok && outcome.conflict).toMatchObject({
      key: ["doc"],
      attempted: { type: "set", value: "a's edit" },
      server: { value: "b's edit" },
    });
    await a.whenSynced();
    expect(shown(a, ["doc"])).toBe("b's edit");
    expect(a.status.conflicts).toHaveLength(1);
    expect((await server.kv.get(["doc"])).value).toBe("b's edit");
  });

  it("applies the prefix's policy: last-writer-wins, or a merge function", async () => {
    const server = await serve({
      sync: {
        rules: [
          { prefix: ["lww"], conflict: "last-writer-wins" },
          {
            prefix: ["merged"],
            conflict: ({ client, server: entry }) => [
              ...new Set([...(entry.value as string[]), ...(client as string[])]),
            ],
          },
        ],
      },
    });
    const proxy = await proxyTo(server);
    const a = await client(proxy.url);
    await a.set(["lww"], 1);
    await a.set(["merged"], ["a"]);
    await a.whenSynced();
    proxy.offline();
    await until(() => a.status.state !== "online", "offline");
    const lww = await a.set(["lww"], "a");
    const merged = await a.set(["merged"], ["a", "b"]);
    await server.kv.set(["lww"], "server");
    await server.kv.set(["merged"], ["a", "c"]);
    proxy.online();
    expect((await lww.confirmed).ok).toBe(true);
    expect((await merged.confirmed).ok).toBe(true);
    await a.whenSynced();
    expect((await server.kv.get(["lww"])).value).toBe("a");
    expect((await server.kv.get(["merged"])).value).toEqual(["a", "c", "b"]);
    expect(shown(a, ["merged"])).toEqual(["a", "c", "b"]);
  });

  it("chains offline writes to one key without a false conflict", async () => {
    const server = await serve();
    const proxy = await proxyTo(server);
    const a = await client(proxy.url);
    await a.set(["counter"], 0);
    await a.whenSynced();
    proxy.offline();
    await until(() => a.status.state !== "online", "offline");
    const writes = [];
    for (let i = 1; i <= 5; i++) writes.push(await a.set(["counter"], i));
    proxy.online();
    const outcomes = await Promise.all(writes.map((w) => w.confirmed));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    expect((await server.kv.get(["counter"])).value).toBe(5);
  });

  it("refuses invalid values, read-only tokens and other namespaces with a typed reason on the write", async () => {
    const prefs = defineStore("prefs", z.object({ theme: z.enum(["light", "dark"]) }));
    const server = await serve({
      tokens: TOKENS,
      stores: [prefs],
      sync: { rules: [{ prefix: ["age"], schema: z.number().int() }] },
    });
    const a = await client(server.url, {
      token: WRITE,
      namespace: "app",
      storage: file("refusals"),
    });
    await a.whenSynced();
    const bad = await (await a.set(["age"], "old")).confirmed;
    expect(bad).toMatchObject({ ok: false, error: { code: "INVALID_VALUE" } });
    expect(!bad.ok && bad.error.issues?.length).toBeGreaterThan(0);
    expect(a.peek(["age"]).exists).toBe(false);
    expect(a.outbox()).toMatchObject([{ state: "failed", error: { code: "INVALID_VALUE" } }]);
    expect(a.status.failed).toBe(1);
    await a.dismiss(a.outbox()[0]!.id);
    expect(a.outbox()).toEqual([]);

    const store = await (await a.set(["prefs", "ada"], { theme: "neon" })).confirmed;
    expect(store).toMatchObject({ ok: false, error: { code: "INVALID_VALUE" } });
    expect((await (await a.set(["prefs", "ada"], { theme: "dark" })).confirmed).ok).toBe(true);
    const app = server.kv.namespace("app");
    expect(await prefs.bind(app).get("ada")).toEqual({ theme: "dark" });
    await until(() => a.peek(["prefs", "ada"]).pending === false, "store entry confirmed");
    expect(shown(a, ["prefs", "ada"])).toEqual({ theme: "dark" });

    const reader = await client(server.url, { token: READ, namespace: "app" });
    await reader.whenSynced();
    expect(shown(reader, ["prefs", "ada"])).toEqual({ theme: "dark" });
    const refused = await (await reader.set(["x"], 1)).confirmed;
    expect(refused).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect((await app.get(["x"])).versionstamp).toBeNull();

    const stranger = await client(server.url, { token: WRITE, namespace: "elsewhere" });
    await until(() => stranger.status.error !== null, "a refusal");
    expect(stranger.status).toMatchObject({ state: "offline", error: { code: "FORBIDDEN" } });
  });

  it("applies a resent write once, and closes only the connection that sends garbage", async () => {
    const server = await serve();
    const a = await client(server.url);
    await a.whenSynced();
    const raw = async () => {
      const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/sync`);
      const messages: Record<string, unknown>[] = [];
      ws.on("message", (data) => messages.push(JSON.parse(String(data))));
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        ws.on("close", (code, reason) => resolve({ code, reason: String(reason) })),
      );
      await new Promise((resolve) => ws.once("open", resolve));
      return { ws, messages, closed };
    };
    const write = {
      type: "write",
      id: 1,
      mutations: [{ type: "set", key: ["once"], value: 1 }],
      checks: [],
      base: [null],
    };
    for (let i = 0; i < 2; i++) {
      const { ws, messages } = await raw();
      ws.send(JSON.stringify({ type: "hello", client: "raw-client", prefixes: [[]] }));
      ws.send(JSON.stringify(write));
      await until(() => messages.some((m) => m.type === "ack"), "ack");
      expect(messages.find((m) => m.type === "ack")).toMatchObject(
        i === 0 ? { id: 1 } : { id: 1, duplicate: true },
      );
      ws.close();
    }
    expect((await server.kv.get(["once"], { metadata: true })).metadata?.version).toBe(1);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/cellar_sync_writes_total\{outcome="duplicate"\} 1\n/);
    expect(metrics).toMatch(/cellar_sync_writes_total\{outcome="ack"\} 1\n/);
    expect(metrics).toMatch(/cellar_sync_connections \d+\n/);

    const bad = await raw();
    bad.ws.send("{not json");
    expect(await bad.closed).toMatchObject({
      code: 4400,
      reason: expect.stringMatching(/^INVALID_REQUEST/),
    });
    const early = await raw();
    early.ws.send(JSON.stringify(write));
    expect(await early.closed).toMatchObject({
      code: 4400,
      reason: expect.stringMatching(/before hello/),
    });

    // The well-behaved client is untouched.
    expect((await (await a.set(["still"], "fine")).confirmed).ok).toBe(true);
  });
});
