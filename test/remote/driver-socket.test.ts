/**
 * The remote client's driver socket (`/api/driver/socket`) against a real server on loopback,
 * reached through a TCP proxy that counts WebSocket upgrades and can cut every connection.
 */
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { encodeKey } from "../../src/codec/key.js";
import { KvU64, openKv } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";

const WRITER = "writer-token-0123456789";
const READER = "reader-token-0123456789";
const MAX_VALUE = 1024;
/** The server's body limit, and so its largest frame: the default for this value limit. */
const MAX_BODY = 1024 * 1024;

/** Request lines the server logged, as `METHOD route status`. */
const lines: string[] = [];
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({
    db: ":memory:",
    port: 0,
    tokens: [
      { token: WRITER, namespaces: ["a"], access: "write" },
      { token: READER, namespaces: ["a"], access: "read" },
    ],
    openOptions: { limits: { maxValueSize: MAX_VALUE } },
    logger: pino(
      { level: "info" },
      {
        write(line: string) {
          const { method, route, status } = JSON.parse(line) as Record<string, unknown>;
          if (method !== undefined) lines.push(`${method} ${route} ${status}`);
        },
      },
    ),
  });
});
afterAll(() => server.close());

/** A TCP proxy to the server: counts driver socket upgrades; `drop` cuts every connection. */
async function proxy(options: { refuseSockets?: boolean } = {}) {
  const target = new URL(server.url);
  const open = new Set<Socket>();
  let upgrades = 0;
  const listener: Server = createServer((client) => {
    open.add(client);
    client.once("close", () => open.delete(client));
    client.on("error", () => {});
    client.once("data", (first: Buffer) => {
      const upgrade = first.toString("latin1").startsWith("GET /api/driver/socket");
      if (upgrade && options.refuseSockets) {
        client.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      if (upgrade) upgrades++;
      const upstream = connect(Number(target.port), target.hostname);
      open.add(upstream);
      upstream.once("close", () => {
        open.delete(upstream);
        client.destroy();
      });
      upstream.on("error", () => {});
      client.once("close", () => upstream.destroy());
      upstream.write(first);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const { port } = listener.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get upgrades() {
      return upgrades;
    },
    get open() {
      return open.size;
    },
    drop() {
      for (const socket of open) socket.destroy();
    },
    close() {
      for (const socket of open) socket.destroy();
      return new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** Driver calls the server answered since `from`, by how they came: `WS` or `POST`. */
const callsSince = (from: number, method: "WS" | "POST") =>
  lines.slice(from).filter((line) => line.startsWith(`${method} /api/driver/`));

/** A raw driver socket with `token`; collects what the server sends and how it closes. */
async function rawSocket(token?: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/driver/socket`, {
    headers: { ...(token && { authorization: `Bearer ${token}` }), ...headers },
  });
  const frames: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  ws.on("message", (data) => {
    frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on("error", () => {});
  // The server accepts the upgrade before it checks the token, so that a refusal has a reason.
  await new Promise<void>((resolve) => {
    ws.once("open", () => resolve());
    ws.once("close", () => resolve());
  });
  return {
    ws,
    closed,
    /** Waits until `n` frames have arrived (the ready frame included). */
    async frames(n: number) {
      while (frames.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      return frames.slice(0, n);
    },
    /** Waits for the answers to `ids`, by id (they come in the order the calls finish). */
    async answers(...ids: number[]) {
      for (;;) {
        const byId = new Map(frames.filter((f) => "id" in f).map((f) => [f.id as number, f]));
        if (ids.every((id) => byId.has(id))) return ids.map((id) => byId.get(id)!);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    call(id: number, op: string, body: unknown) {
      ws.send(JSON.stringify({ id, op, body }));
    },
  };
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
const inA = (...key: string[]) => b64(encodeKey(["a", ...key]));
const jsonValue = (value: unknown) => ({ e: "json", d: JSON.stringify(value) });

describe("the remote client over the driver socket", () => {
  it("pipelines many calls in flight on one socket, each answered as its own", async () => {
    const through = await proxy();
    const kv = await openKv(through.url, { token: WRITER });
    const from = lines.length;
    try {
      await Promise.all(Array.from({ length: 300 }, (_, i) => kv.set(["p", i], { i })));
      const [entries] = await Promise.all([
        Promise.all(Array.from({ length: 1000 }, (_, i) => kv.get(["p", i % 300]))),
        Promise.all(Array.from({ length: 200 }, () => kv.atomic().sum(["n"], 1n).commit())),
        Promise.all(
          Array.from({ length: 50 }, (_, i) => kv.count({ prefix: ["p"], start: ["p", i] })),
        ),
      ]);
      for (const [i, entry] of entries.entries()) expect(entry.value).toEqual({ i: i % 300 });
      expect((await kv.get<KvU64>(["n"])).value).toEqual(new KvU64(200n));
      expect(through.upgrades).toBe(1);
      expect(callsSince(from, "WS").length).toBeGreaterThan(0);
      expect(callsSince(from, "POST")).toEqual([]);
    } finally {
      await kv.close();
      await through.close();
    }
  });

  it("answers frames sent without waiting by id, on one connection", async () => {
    const socket = await rawSocket(WRITER);
    await socket.frames(1);
    const writes = Array.from({ length: 20 }, (_, i) => ({
      checks: [],
      mutations: [{ t: "set", k: inA("raw", String(i)), v: jsonValue(i) }],
    }));
    socket.call(0, "write", { writes });
    for (let id = 1; id <= 20; id++)
      socket.call(id, "read", {
        ranges: [
          {
            start: inA("raw", String(id - 1)),
            end: `${inA("raw", String(id - 1))}AA`,
            limit: 1,
            reverse: false,
          },
        ],
        metadata: false,
      });
    const frames = await socket.frames(22);
    expect(frames[0]).toEqual({ ready: true });
    const byId = new Map(frames.slice(1).map((frame) => [frame.id, frame]));
    expect([...byId.keys()].sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: 21 }, (_, i) => i),
    );
    socket.ws.close();
    await socket.closed;
  });

  it("reconnects after the connection drops: reads in flight are answered, writes applied at most once", async () => {
    const through = await proxy();
    const kv = await openKv(through.url, { token: WRITER });
    try {
      await kv.set(["r"], "value");
      await kv.set(["counter"], new KvU64(0n));
      const reads = Array.from({ length: 200 }, () => kv.get<string>(["r"]));
      const writes = Array.from({ length: 100 }, () =>
        kv
          .atomic()
          .sum(["counter"], 1n)
          .commit()
          .then(
            () => "applied" as const,
            (error: { code?: string }) => error.code,
          ),
      );
      through.drop();
      for (const entry of await Promise.all(reads)) expect(entry.value).toBe("value");
      const outcomes = await Promise.all(writes);
      for (const outcome of outcomes) expect(["applied", "UNAVAILABLE"]).toContain(outcome);
      const applied = outcomes.filter((outcome) => outcome === "applied").length;
      const counter = (await kv.get<KvU64>(["counter"])).value!.value;
      expect(counter).toBeGreaterThanOrEqual(BigInt(applied));
      expect(counter).toBeLessThanOrEqual(100n);
      // Calls go on over HTTP until the next socket is up; then over it.
      for (let i = 0; i < 1000 && through.upgrades < 2; i++) {
        expect((await kv.get(["r"])).value).toBe("value");
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(through.upgrades).toBe(2);
      const from = lines.length;
      expect((await kv.get(["r"])).value).toBe("value");
      expect(callsSince(from, "WS")).toHaveLength(1);
    } finally {
      await kv.close();
      await through.close();
    }
  });

  it("falls back to HTTP when the server has no driver socket", async () => {
    const through = await proxy({ refuseSockets: true });
    const kv = await openKv(through.url, { token: WRITER });
    const from = lines.length;
    try {
      await kv.set(["f"], 1);
      expect((await kv.get(["f"])).value).toBe(1);
      expect(callsSince(from, "WS")).toEqual([]);
      expect(callsSince(from, "POST").length).toBeGreaterThan(0);
    } finally {
      await kv.close();
      await through.close();
    }
  });

  it("closes its socket on kv.close, and refuses calls after it", async () => {
    const through = await proxy();
    const kv = await openKv(through.url, { token: WRITER });
    await kv.get(["x"]);
    await kv.close();
    for (let i = 0; i < 1000 && through.open > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(through.open).toBe(0);
    await expect(kv.get(["x"])).rejects.toMatchObject({ code: "DATABASE_CLOSED" });
    await through.close();
  });
});

describe("the driver socket's security", () => {
  it("refuses a write of a read token on that call alone, with the HTTP route's code", async () => {
    const kv = await openKv(server.url, { token: READER });
    const from = lines.length;
    try {
      await expect(kv.set(["w"], 1)).rejects.toMatchObject({ code: "FORBIDDEN" });
      expect((await kv.get(["w"])).value).toBeNull();
      expect(callsSince(from, "WS")).toEqual([
        "WS /api/driver/write 403",
        "WS /api/driver/read 200",
      ]);
    } finally {
      await kv.close();
    }
  });

  it("refuses a key in a namespace the token may not use, and answers the next call", async () => {
    const socket = await rawSocket(WRITER);
    const outside = b64(encodeKey(["b", "x"]));
    socket.call(1, "history", { key: outside, limit: 1 });
    socket.call(2, "write", {
      writes: [{ checks: [], mutations: [{ t: "set", k: outside, v: jsonValue(1) }] }],
    });
    socket.call(3, "count", { start: inA(), end: `${inA()}AA` });
    const [history, write, count] = await socket.answers(1, 2, 3);
    expect(history).toMatchObject({ id: 1, error: { code: "FORBIDDEN" } });
    expect(write).toMatchObject({ id: 2, result: { results: [{ error: { code: "FORBIDDEN" } }] } });
    expect(count).toMatchObject({ id: 3, result: { count: expect.any(Number) } });
    socket.ws.close();
  });

  it("closes an upgrade without a valid token or namespace with 4401 / 4403", async () => {
    const none = await rawSocket();
    expect(await none.closed).toMatchObject({
      code: 4401,
      reason: expect.stringMatching(/^UNAUTHORIZED: /),
    });
    const bad = await rawSocket("not-a-token-0123456789");
    expect(await bad.closed).toMatchObject({ code: 4401 });
    const other = await rawSocket(WRITER, { "x-cellar-namespace": "b" });
    expect(await other.closed).toMatchObject({
      code: 4403,
      reason: expect.stringMatching(/^FORBIDDEN: /),
    });
  });

  it("refuses a value over the limit on its own write, and a frame over the body limit by closing", async () => {
    const socket = await rawSocket(WRITER);
    socket.call(1, "write", {
      writes: [
        {
          checks: [],
          mutations: [{ t: "set", k: inA("big"), v: jsonValue("x".repeat(MAX_VALUE + 1)) }],
        },
        { checks: [], mutations: [{ t: "set", k: inA("small"), v: jsonValue("ok") }] },
      ],
    });
    const [answer] = await socket.answers(1);
    expect(answer).toMatchObject({
      id: 1,
      result: { results: [{ error: { code: "VALUE_TOO_LARGE" } }, { vs: expect.any(String) }] },
    });
    socket.ws.send(JSON.stringify({ id: 2, op: "read", body: { pad: "x".repeat(MAX_BODY) } }));
    expect((await socket.closed).code).toBe(1009);

    // The client itself refuses the value before sending it, as over HTTP.
    const kv = await openKv(server.url, { token: WRITER });
    await expect(kv.set(["big"], "x".repeat(MAX_VALUE + 1))).rejects.toMatchObject({
      code: "VALUE_TOO_LARGE",
    });
    await kv.close();
  });

  it("closes a connection that sends a malformed frame with 4400 and why; others go on", async () => {
    const other = await rawSocket(WRITER);
    await other.frames(1);
    for (const frame of ["not json", "[1]", '{"op":"read","body":{}}', '{"id":-1,"op":"read"}']) {
      const socket = await rawSocket(WRITER);
      socket.ws.send(frame);
      expect(await socket.closed).toMatchObject({
        code: 4400,
        reason: expect.stringMatching(/^INVALID_REQUEST: /),
      });
    }
    const binary = await rawSocket(WRITER);
    binary.ws.send(Buffer.from([1, 2, 3]));
    expect(await binary.closed).toMatchObject({ code: 4400 });

    // A well-formed frame naming no call, or with a body that is no object, is refused alone.
    other.call(1, "drop-everything", {});
    other.call(2, "read", 5);
    other.call(3, "count", { start: inA(), end: `${inA()}AA` });
    const [unknown, notObject, count] = await other.answers(1, 2, 3);
    expect(unknown).toMatchObject({ id: 1, error: { code: "INVALID_REQUEST" } });
    expect(notObject).toMatchObject({ id: 2, error: { code: "INVALID_REQUEST" } });
    expect(count).toMatchObject({ id: 3, result: { count: expect.any(Number) } });
    other.ws.close();
  });
});
