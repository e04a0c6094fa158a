/**
 * The client store when answers are lost, writes are resent, the server or the storage fails:
 * a write is applied once and answered with what really happened to it; one bad write never
 * stalls the others; a failed save is retried, never leaves the saved state inconsistent.
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { z } from "zod";
import {
  type ClientKv,
  type ClientStorage,
  createClientKv,
  defineStore,
  memoryStorage,
  type StorageChanges,
} from "../../src/index.js";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/serve.js";
import { until } from "../workspace/helpers.js";

const servers: RunningServer[] = [];
const clients: ClientKv[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const server of servers.splice(0)) await server.close();
});

async function serve(options: Partial<ServerOptions> = {}) {
  const server = await startServer({ db: ":memory:", port: 0, ...options });
  servers.push(server);
  return server;
}

async function client(url: string, options: Partial<Parameters<typeof createClientKv>[0]> = {}) {
  const kv = await createClientKv({ url, reconnectDelay: 20, maxReconnectDelay: 100, ...options });
  clients.push(kv);
  return kv;
}

/**
 * A WebSocket whose first connection loses the server's first `lose` answers to writes and then
 * drops, as a network cut right after the server applied them would.
 */
function lossyWebSocket(lose: number) {
  let connections = 0;
  return class Lossy {
    readonly ws: WebSocket;
    onopen: ((e: unknown) => void) | null = null;
    onmessage: ((e: { data: unknown }) => void) | null = null;
    onclose: ((e: { code: number; reason: string }) => void) | null = null;
    onerror: ((e: unknown) => void) | null = null;
    constructor(url: string) {
      const first = connections++ === 0;
      let lost = 0;
      this.ws = new WebSocket(url);
      this.ws.onopen = (e) => this.onopen?.(e);
      this.ws.onerror = (e) => this.onerror?.(e);
      this.ws.onclose = (e) => this.onclose?.({ code: 1006, reason: e.reason });
      this.ws.onmessage = (e) => {
        const { type } = JSON.parse(String(e.data));
        if (first && ["ack", "conflict", "refused"].includes(type)) {
          if (++lost === lose) this.ws.close(4000, "network cut");
          return;
        }
        this.onmessage?.({ data: e.data });
      };
    }
    get readyState() {
      return this.ws.readyState;
    }
    send(data: string) {
      this.ws.send(data);
    }
    close(code?: number, reason?: string) {
      this.ws.close(code, reason);
    }
  } as never;
}

describe("client store answers", () => {
  it("reports a conflict whose answer was lost as a conflict when resent, not as applied", async () => {
    const server = await serve();
    const a = await client(server.url, { manual: true, WebSocket: lossyWebSocket(2) });
    const conflicting = await a.set(["k"], "mine");
    const applied = await a.set(["x"], "ok");
    await server.kv.set(["k"], "server's");
    a.connect();
    expect(await conflicting.confirmed).toMatchObject({ ok: false, error: { code: "CONFLICT" } });
    expect(await applied.confirmed).toMatchObject({ ok: true });
    await a.whenSynced();
    expect(a.status.conflicts).toHaveLength(1);
    expect(a.peek(["k"]).value).toBe("server's");
  });

  it("answers a resent write with its own commit, so chained writes stay chained", async () => {
    const server = await serve();
    const a = await client(server.url, { manual: true, WebSocket: lossyWebSocket(2) });
    await a.set(["k"], "one");
    await a.set(["x"], "other");
    const third = await a.set(["k"], "two");
    a.connect();
    expect(await third.confirmed).toMatchObject({ ok: true });
    expect((await server.kv.get(["k"], { metadata: true })).metadata?.version).toBe(2);
    await a.whenSynced();
    expect(a.peek(["k"])).toMatchObject({ value: "two", pending: false });
  });

  it("never shows another client the writer's id, and a guessed id changes nothing", async () => {
    const server = await serve();
    const victim = await client(server.url);
    const other = await client(server.url);
    await (await victim.set(["profile"], "v1")).confirmed;
    await until(() => other.peek(["profile"]).exists, "the other client");
    const tag = other.peek(["profile"]).metadata?.modifiedBy?.replace("sync:", "") ?? "";
    expect(tag).toMatch(/^[0-9a-f]{16}$/);
    // Another client claims that tag as its id and sends a write with a huge id.
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/sync`);
    await new Promise((resolve) => ws.once("open", resolve));
    ws.send(JSON.stringify({ type: "hello", client: tag, prefixes: [["junk"]] }));
    ws.send(
      JSON.stringify({
        type: "write",
        id: Number.MAX_SAFE_INTEGER,
        mutations: [{ type: "set", key: ["junk"], value: 1 }],
        checks: [],
        base: [null],
      }),
    );
    await new Promise((resolve) =>
      ws.on("message", (data) => JSON.parse(String(data)).type === "ack" && resolve(null)),
    );
    ws.close();
    expect(await (await victim.set(["profile"], "v2")).confirmed).toMatchObject({ ok: true });
    expect((await server.kv.get(["profile"])).value).toBe("v2");
  });

  it("refuses a write naming another namespace, on that write, and keeps the connection", async () => {
    const server = await serve();
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/sync?namespace=app`);
    const answers: Record<string, unknown>[] = [];
    ws.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (message.type === "ack" || message.type === "refused") answers.push(message);
    });
    await new Promise((resolve) => ws.once("open", resolve));
    ws.send(JSON.stringify({ type: "hello", client: "ns-client", prefixes: [[]] }));
    const write = (id: number, namespace: string) =>
      ws.send(
        JSON.stringify({
          type: "write",
          id,
          namespace,
          mutations: [{ type: "set", key: ["k"], value: id }],
          checks: [],
          base: [null],
        }),
      );
    write(1, "other");
    write(2, "app");
    await until(() => answers.length === 2, "both answers");
    expect(answers[0]).toMatchObject({ type: "refused", id: 1, error: { code: "FORBIDDEN" } });
    expect(answers[1]).toMatchObject({ type: "ack", id: 2 });
    expect((await server.kv.namespace("other").get(["k"])).versionstamp).toBeNull();
    expect((await server.kv.namespace("app").get(["k"])).value).toBe(2);
    ws.close();
  });

  it("refuses a write whose merge function throws, and goes on with the others", async () => {
    const server = await serve({
      sync: {
        rules: [
          {
            prefix: ["m"],
            conflict: () => {
              throw new Error("cannot merge");
            },
          },
        ],
      },
    });
    const a = await client(server.url, { manual: true });
    const merged = await a.set(["m"], "mine");
    const other = await a.set(["other"], 1);
    await server.kv.set(["m"], "server's");
    a.connect();
    expect(await merged.confirmed).toMatchObject({
      ok: false,
      error: {
        code: "CONFLICT",
        message: expect.stringMatching(/merge function failed \(cannot merge\)/),
      },
    });
    expect(await other.confirmed).toMatchObject({ ok: true });
  });

  it("refuses a write larger than the server takes without sending it, and sends the rest", async () => {
    const server = await serve({ maxBodySize: 256 * 1024 });
    const a = await client(server.url);
    await a.whenSynced();
    const op = a.atomic();
    for (let i = 0; i < 8; i++) op.set(["big", i], "z".repeat(60_000));
    const big = await op.commit();
    const small = await a.set(["small"], 1);
    expect("confirmed" in big && (await big.confirmed)).toMatchObject({
      ok: false,
      error: { code: "PAYLOAD_TOO_LARGE" },
    });
    expect(await small.confirmed).toMatchObject({ ok: true });
    expect(a.peekList({ prefix: ["big"] })).toEqual([]);
  });

  it("sends a large snapshot in pages a slow socket can take", async () => {
    const server = await serve();
    for (let i = 0; i < 400; i++) await server.kv.set(["blob", i], "b".repeat(50_000));
    const a = await client(server.url);
    await a.whenSynced();
    expect(a.peekList({ prefix: ["blob"] })).toHaveLength(400);
  }, 60_000);

  it("keeps a typed store's stored value, metadata and expiry in the writer's view", async () => {
    const users = defineStore(
      "users",
      z.object({ name: z.string().trim(), role: z.string().default("user") }),
    );
    const server = await serve({ stores: [users] });
    const a = await client(server.url);
    const b = await client(server.url);
    await (await a.set(["users", "u1"], { name: "  Ann  " })).confirmed;
    await until(() => b.peek(["users", "u1"]).exists, "b");
    for (const c of [a, b])
      expect(c.peek(["users", "u1"]).value).toEqual({ name: "Ann", role: "user" });
    await (await a.set(["session"], "s", { expireIn: 60_000 })).confirmed;
    await until(() => a.peek(["session"]).metadata !== undefined, "the writer's metadata");
    expect(a.peek(["session"]).metadata?.expiresAt).toBeGreaterThan(Date.now());
  });

  it("rebases an offline check-and-set on its own earlier write", async () => {
    const server = await serve();
    const a = await client(server.url);
    await (await a.set(["count"], 0)).confirmed;
    a.disconnect();
    const writes = [];
    for (let i = 1; i <= 3; i++) {
      const now = a.peek<number>(["count"]);
      const w = await a
        .atomic()
        .check({ key: ["count"], versionstamp: now.versionstamp })
        .set(["count"], (now.value ?? 0) + 1)
        .commit();
      if (!("confirmed" in w)) throw new Error("the local check failed");
      writes.push(w);
    }
    a.connect();
    for (const w of writes) expect(await w.confirmed).toMatchObject({ ok: true });
    expect((await server.kv.get(["count"])).value).toBe(3);
  });

  it("retries a failed save, and never saves a resume point ahead of its entries", async () => {
    const server = await serve();
    const inner = memoryStorage();
    let fail = 0;
    const storage: ClientStorage = {
      ...inner,
      async save(changes: StorageChanges) {
        if (fail > 0) {
          fail--;
          throw new Error("quota exceeded");
        }
        return inner.save(changes);
      },
    };
    const a = await client(server.url, { storage });
    await a.whenSynced();
    fail = 1;
    await server.kv.set(["lost"], "value");
    await until(() => a.status.error?.code === "STORAGE_ERROR", "the failure on the status");
    await server.kv.set(["later"], "value");
    await until(() => a.peek(["later"]).exists, "the next change");
    await (await a.set(["mine"], 1)).confirmed;
    const saved = await inner.load();
    const keys = saved.entries.map((e) => JSON.parse(e.json).k[0]);
    expect(keys).toEqual(expect.arrayContaining(["lost", "later", "mine"]));
    expect(saved.meta.cursor! >= (await server.kv.get(["lost"])).versionstamp!).toBe(true);

    fail = 1;
    await expect(a.set(["refused"], 1)).rejects.toMatchObject({ code: "STORAGE_ERROR" });
    // The write stays in the view and the outbox; the next save takes it, and it is sent.
    expect(a.peek(["refused"])).toMatchObject({ value: 1, pending: true });
    await (await a.set(["after"], 2)).confirmed;
    expect((await server.kv.get(["refused"])).value).toBe(1);
  });

  it("commits a burst of writes in the order they were made, chained ones included", async () => {
    const server = await serve();
    const a = await client(server.url, { manual: true });
    const writes = [];
    for (let i = 0; i < 40; i++) writes.push(await a.set(["k", i % 7], i));
    a.connect();
    const stamps = [];
    for (const w of writes) {
      const outcome = await w.confirmed;
      if (!outcome.ok) throw new Error(JSON.stringify(outcome));
      stamps.push(outcome.versionstamp);
    }
    expect([...stamps].sort()).toEqual(stamps);
    for (let k = 0; k < 7; k++)
      expect((await server.kv.get(["k", k])).value).toBe(
        Math.max(...[...Array(40).keys()].filter((i) => i % 7 === k)),
      );
  });

  it("rejects whenSynced when the server refuses the client for good", async () => {
    const server = await serve({
      tokens: [{ token: "a-token-0123456789abc", namespaces: ["app"], access: "write" }],
    });
    const a = await client(server.url, { token: "wrong-token-0123456789" });
    await expect(a.whenSynced()).rejects.toMatchObject({ code: "UNAUTHORIZED" });
  });
});
