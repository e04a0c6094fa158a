/**
 * Events over a real port: `GET /api/events` as Server-Sent Events (through node's HTTP client)
 * and as a WebSocket (through the `ws` client). Patterns, resuming, progress, refusals before
 * anything streams, tokens and namespaces, slow readers, fan-out to many connections, shutdown.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { coreOf } from "../../src/core/surface.js";
import type { RunningServer } from "../../src/server/index.js";
import {
  type EventStream,
  expectRefused,
  query,
  type Reply,
  type Send,
  type SseEvent,
  send,
  serve,
  serverFor,
  sleep,
  sse,
  tempDir,
  VERSIONSTAMP,
} from "./helpers.js";

const events = (params: Record<string, string>) => `/api/events${query(params)}`;

/** Waits until `check` holds, polling. */
async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(10);
  }
}

/** The next `n` events of an SSE stream, progress messages skipped. */
async function take(stream: EventStream, n: number, ms = 5000): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  while (out.length < n) {
    const event = await stream.next(ms);
    if (event.event !== "progress") out.push(event);
  }
  return out;
}

/** Every event of a stream until the server ends it. */
async function rest(stream: EventStream): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for (;;) {
    try {
      out.push(await stream.next(10_000));
    } catch (error) {
      if (stream.ended) return out;
      throw error;
    }
  }
}

/** Subscriptions open on the server's event hub (one per broadcast). */
const subscriptions = (server: RunningServer) => coreOf(server.kv).core.events.size;

interface Item {
  readonly type: string;
  // biome-ignore lint/suspicious/noExplicitAny: items are inspected field by field
  readonly [field: string]: any;
}

/** A WebSocket of `GET /api/events`, read item by item. */
class EventSocket {
  readonly messages: Item[][] = [];
  #read = 0;
  #offset = 0;
  closed: { code: number; reason: string } | null = null;
  #wake = () => {};

  constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.messages.push(JSON.parse(data.toString()) as Item[]);
      this.#wake();
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#wake();
    });
  }

  /** The next item of any kind; fails after `ms` or once the socket closed first. */
  async next(ms = 5000): Promise<Item> {
    const deadline = Date.now() + ms;
    for (;;) {
      const message = this.messages[this.#read];
      if (message && this.#offset < message.length) return message[this.#offset++]!;
      if (message) {
        this.#read++;
        this.#offset = 0;
        continue;
      }
      if (this.closed) throw new Error(`the socket closed: ${this.closed.code}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no item within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** The next `n` events, progress markers skipped. */
  async take(n: number, ms = 5000): Promise<Item[]> {
    const out: Item[] = [];
    while (out.length < n) {
      const item = await this.next(ms);
      if (item.type !== "progress") out.push(item);
    }
    return out;
  }

  /** Resolves once the server closed the socket. */
  async closing(ms = 10_000): Promise<{ code: number; reason: string }> {
    await until(() => this.closed !== null, ms);
    return this.closed!;
  }

  close(): void {
    this.ws.terminate();
  }
}

const wsUrl = (base: string, path: string) => base.replace(/^http/, "ws") + path;

interface Upgrade extends Send {
  /** The certificate to trust, for a TLS server. */
  readonly ca?: Buffer;
}

function connect(base: string, path: string, options: Upgrade): WebSocket {
  return new WebSocket(wsUrl(base, path), {
    headers: {
      ...(options.token && { authorization: `Bearer ${options.token}` }),
      ...(options.namespace !== undefined && { "x-cellar-namespace": options.namespace }),
      ...options.headers,
    },
    ...(options.ca && { ca: options.ca }),
  });
}

/** Opens the WebSocket form; resolves once open. */
async function socket(base: string, path: string, options: Upgrade = {}): Promise<EventSocket> {
  const ws = connect(base, path, options);
  const opened = new EventSocket(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res: IncomingMessage) =>
      reject(new Error(`refused with ${res.statusCode}`)),
    );
  });
  return opened;
}

/** The HTTP answer to an upgrade the server refuses before accepting it. */
function refusedUpgrade(base: string, path: string, options: Upgrade = {}): Promise<Reply> {
  const ws = connect(base, path, options);
  return new Promise((resolve, reject) => {
    ws.once("open", () => reject(new Error("the upgrade was accepted")));
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res: IncomingMessage) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        ws.terminate();
      });
    });
  });
}

describe("GET /api/events over SSE", () => {
  const server = serverFor({});

  it("sends each key's event with the entry before and after; only a commit's last event has an id", async () => {
    const stream = await sse(server().url, events({ pattern: "users/+/settings" }), {
      namespace: "sse-shape",
    });
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
      const kv = server().kv.namespace("sse-shape");
      const first = await kv.set(["users", "ada", "settings"], { theme: "dark" }, { tags: ["ui"] });
      const both = await kv
        .atomic()
        .set(["users", "bob", "settings"], { theme: "light" })
        .set(["users", "ada", "settings"], { theme: "light" })
        .set(["users", "ada", "profile"], "not matched")
        .commit();
      await kv.delete(["users", "bob", "settings"]);
      const [created, ada, bob, deleted] = await take(stream, 4);

      expect(created).toEqual({
        event: "set",
        id: first.versionstamp,
        data: {
          type: "set",
          key: ["users", "ada", "settings"],
          versionstamp: first.versionstamp,
          entry: {
            key: ["users", "ada", "settings"],
            value: { theme: "dark" },
            versionstamp: first.versionstamp,
            metadata: expect.objectContaining({ version: 1, tags: ["ui"], expiresAt: null }),
          },
          previous: null,
        },
      });
      const stamp = both.ok ? both.versionstamp : "";
      // One commit, two events in key order: the id (a resume point) only on the last.
      expect([ada!.id, bob!.id]).toEqual([undefined, stamp]);
      expect(ada!.data).toMatchObject({
        type: "set",
        key: ["users", "ada", "settings"],
        versionstamp: stamp,
        entry: { value: { theme: "light" }, metadata: { version: 2, tags: ["ui"] } },
        previous: { value: { theme: "dark" }, versionstamp: first.versionstamp },
      });
      expect(bob!.data).toMatchObject({ key: ["users", "bob", "settings"], previous: null });
      expect(deleted).toMatchObject({
        event: "delete",
        data: { type: "delete", entry: null, previous: { value: { theme: "light" } } },
      });
    } finally {
      stream.close();
    }
  });

  it("matches + against one part, a last # against zero or more, and ~s:+ literally", async () => {
    const ns = { namespace: "sse-patterns" };
    const one = await sse(server().url, events({ pattern: "users/+/settings" }), ns);
    const all = await sse(server().url, events({ pattern: "users/#" }), ns);
    const plus = await sse(server().url, events({ pattern: "tags/~s:+" }), ns);
    // Written by hand, as a user would type it: a bare + in the query is the wildcard.
    const bare = await sse(server().url, "/api/events?pattern=users/+/settings", ns);
    try {
      const kv = server().kv.namespace("sse-patterns");
      for (const key of [
        ["users"],
        ["users", "ada", "settings"],
        ["users", 7, "settings"],
        ["users", "ada", "settings", "deep"],
        ["users", "ada"],
        ["usersX", "ada", "settings"],
        ["tags", "+"],
        ["tags", "x"],
      ]) {
        await kv.set(key, key.length);
      }
      await kv.set(["end"], 0);
      const keys = async (stream: EventStream, n: number) =>
        (await take(stream, n)).map((event) => event.data.key);
      expect(await keys(one, 2)).toEqual([
        ["users", "ada", "settings"],
        ["users", 7, "settings"],
      ]);
      expect(await keys(all, 5)).toEqual([
        ["users"],
        ["users", "ada", "settings"],
        ["users", 7, "settings"],
        ["users", "ada", "settings", "deep"],
        ["users", "ada"],
      ]);
      expect(await keys(plus, 1)).toEqual([["tags", "+"]]);
      expect(await keys(bare, 2)).toEqual([
        ["users", "ada", "settings"],
        ["users", 7, "settings"],
      ]);
      const late = [...(await one.drain(100)), ...(await all.drain(0)), ...(await plus.drain(0))];
      expect(late.filter((event) => event.event !== "progress")).toEqual([]);
    } finally {
      one.close();
      all.close();
      plus.close();
      bare.close();
    }
  });

  it("resumes after since= or Last-Event-ID with no gap and no duplicate, while commits go on", async () => {
    const kv = server().kv.namespace("sse-resume");
    const stamps: string[] = [];
    for (let i = 0; i < 10; i++) stamps.push((await kv.set(["r", i % 3], i)).versionstamp);
    const from = stamps[3]!;
    const resumes: [string, Record<string, string>][] = [
      [events({ pattern: "r/#", since: from }), {}],
      [events({ pattern: "r/#" }), { "last-event-id": from }],
    ];
    for (const [path, headers] of resumes) {
      const stream = await sse(server().url, path, { namespace: "sse-resume", headers });
      try {
        const writes = Array.from({ length: 20 }, (_, i) => kv.set(["r", i % 3], 100 + i));
        stamps.push(...(await Promise.all(writes)).map((result) => result.versionstamp));
        const got = await take(stream, stamps.length - 4);
        expect(got.map((event) => event.id)).toEqual(stamps.slice(4));
        expect(got[0]!.data.previous.value).toBe(1);
        expect(await stream.drain(100)).toEqual([]);
      } finally {
        stream.close();
      }
    }
  });

  it("refuses a bad pattern, since or Last-Event-ID with a 400 before streaming", async () => {
    const refused = async (path: string, code: string, headers: Record<string, string> = {}) => {
      const reply = await send(server().url, path, { headers });
      expectRefused(reply, 400, code);
      return reply.json.error.message as string;
    };
    expect(await refused(events({ pattern: "a/#/b" }), "INVALID_PATTERN")).toMatch(/part 1/);
    expect(await refused(events({ pattern: "" }), "INVALID_PATTERN")).toMatch(/empty/);
    expect(await refused(events({ pattern: "a/~n:abc" }), "INVALID_PATTERN")).toMatch(/segment 1/);
    expect(await refused("/api/events", "INVALID_REQUEST")).toMatch(/pattern/);
    expect(await refused(events({ pattern: "a", since: "yesterday" }), "INVALID_REQUEST")).toMatch(
      /since/,
    );
    await refused(events({ pattern: "a" }), "INVALID_VERSIONSTAMP", { "last-event-id": "nope" });
    expect(await refused(events({ pattern: "a", sinse: "x" }), "INVALID_REQUEST")).toMatch(/sinse/);
    expect(subscriptions(server())).toBe(0);
  });
});

describe("GET /api/events: progress and the change log's window", () => {
  const server = serverFor({ pingInterval: 100, openOptions: { changeLog: { size: 10 } } });

  it("sends a progress message after a quiet interval, as a resume point", async () => {
    const stream = await sse(server().url, events({ pattern: "p/#" }));
    try {
      const { versionstamp } = await server().kv.set(["p", 1], 1);
      const [event] = await take(stream, 1);
      expect(event!.id).toBe(versionstamp);
      const other = await server().kv.set(["elsewhere"], 1);
      let progress: SseEvent;
      do progress = await stream.next();
      while (progress.data.versionstamp < other.versionstamp);
      expect(progress).toEqual({
        event: "progress",
        id: other.versionstamp,
        data: { versionstamp: other.versionstamp },
      });
    } finally {
      stream.close();
    }
  });

  it("ends with a COMPACTED error naming the oldest resume point once the log was pruned", async () => {
    const first = await server().kv.set(["c"], 0);
    for (let i = 1; i <= 40; i++) await server().kv.set(["c"], i);
    const stream = await sse(server().url, events({ pattern: "c", since: first.versionstamp }));
    const got = await rest(stream);
    expect(got).toEqual([
      {
        event: "error",
        id: undefined,
        data: {
          error: {
            code: "COMPACTED",
            message: expect.stringContaining(first.versionstamp),
            oldest: expect.stringMatching(VERSIONSTAMP),
          },
        },
      },
    ]);
    const oldest = got[0]!.data.error.oldest as string;
    const resumed = await sse(server().url, events({ pattern: "c", since: oldest }));
    try {
      const [next] = await take(resumed, 1);
      expect(next!.id! > oldest).toBe(true);
    } finally {
      resumed.close();
    }
  });

  it("sends progress markers and COMPACTED over a WebSocket too", async () => {
    const live = await socket(server().url, events({ pattern: "wp/#" }));
    try {
      const { versionstamp } = await server().kv.set(["wp", 1], 1);
      expect(await live.next()).toMatchObject({ type: "set", versionstamp });
      const progress = await live.next();
      expect(progress).toEqual({ type: "progress", versionstamp: expect.any(String) });
      expect(progress.versionstamp >= versionstamp).toBe(true);
    } finally {
      live.close();
    }
    const first = await server().kv.set(["wc"], 0);
    for (let i = 1; i <= 40; i++) await server().kv.set(["wc"], i);
    const stale = await socket(server().url, events({ pattern: "wc", since: first.versionstamp }));
    expect(await stale.next()).toEqual({
      type: "error",
      error: {
        code: "COMPACTED",
        message: expect.any(String),
        oldest: expect.stringMatching(VERSIONSTAMP),
      },
    });
    expect(await stale.closing()).toEqual({ code: 1008, reason: "COMPACTED" });
  });
});

describe("GET /api/events with tokens", () => {
  const READER = "a-reader-token-000000000";
  const B_WRITER = "b-writer-token-000000000";
  const ADMIN = "events-admin-token-00000";
  const server = serverFor({
    tokens: [
      { token: READER, namespaces: ["a"], access: "read" },
      { token: B_WRITER, namespaces: ["b"], access: "write" },
      { token: ADMIN, namespaces: ["*"], access: "admin" },
    ],
  });

  it("streams to a read token the events of its namespace only", async () => {
    const byHeader = await sse(server().url, events({ pattern: "#" }), { token: READER });
    const byQuery = await sse(server().url, events({ pattern: "#", token: READER }));
    try {
      expect([byHeader.status, byQuery.status]).toEqual([200, 200]);
      await server().kv.namespace("b").set(["k"], "of b");
      await server().kv.set(["k"], "of the default namespace");
      await server().kv.namespace("a").set(["k"], "of a");
      for (const stream of [byHeader, byQuery]) {
        const [event] = await take(stream, 1);
        expect(event!.data).toMatchObject({ key: ["k"], entry: { value: "of a" } });
        expect(await stream.drain(100)).toEqual([]);
      }
    } finally {
      byHeader.close();
      byQuery.close();
    }
  });

  it("refuses a missing, unknown or out-of-namespace token before streaming", async () => {
    const path = events({ pattern: "#" });
    const missing = await send(server().url, path);
    expectRefused(missing, 401, "UNAUTHORIZED");
    expect(missing.headers["www-authenticate"]).toBe('Bearer realm="cellar"');
    expectRefused(await send(server().url, path, { token: "not-a-token-at-all" }), 401, [
      "UNAUTHORIZED",
    ]);
    expectRefused(await send(server().url, path, { token: READER, namespace: "b" }), 403, [
      "FORBIDDEN",
    ]);
    expect(subscriptions(server())).toBe(0);
  });

  it("holds the WebSocket form to the same rules", async () => {
    const path = events({ pattern: "#" });
    const missing = await refusedUpgrade(server().url, path);
    expectRefused(missing, 401, "UNAUTHORIZED");
    expect(missing.headers["www-authenticate"]).toBe('Bearer realm="cellar"');
    expectRefused(
      await refusedUpgrade(server().url, path, { token: READER, namespace: "b" }),
      403,
      ["FORBIDDEN"],
    );
    const byQuery = await socket(server().url, events({ pattern: "#", token: READER }));
    const ofB = await socket(server().url, path, { token: B_WRITER });
    try {
      await server().kv.namespace("b").set(["w"], "of b");
      await server().kv.namespace("a").set(["w"], "of a");
      expect(await byQuery.take(1)).toMatchObject([{ key: ["w"], entry: { value: "of a" } }]);
      expect(await ofB.take(1)).toMatchObject([{ key: ["w"], entry: { value: "of b" } }]);
      await sleep(100);
      expect(byQuery.messages.flat().length + ofB.messages.flat().length).toBe(2);
    } finally {
      byQuery.close();
      ofB.close();
    }
  });
});

describe("GET /api/events as a WebSocket", () => {
  const server = serverFor({ cors: ["https://app.example.com"] });

  it("sends each flush as one JSON array of events, and resumes with since", async () => {
    const ns = { namespace: "ws-basic" };
    const kv = server().kv.namespace("ws-basic");
    const live = await socket(server().url, events({ pattern: "users/+/settings" }), ns);
    try {
      const first = await kv.set(["users", "ada", "settings"], "dark", { tags: ["ui"] });
      const second = await kv
        .atomic()
        .set(["users", "ada", "settings"], "light")
        .set(["users", "bob", "settings"], "light")
        .set(["users", "ada", "profile"], "not matched")
        .commit();
      const [created, ada, bob] = await live.take(3);
      expect(created).toEqual({
        type: "set",
        key: ["users", "ada", "settings"],
        versionstamp: first.versionstamp,
        entry: {
          key: ["users", "ada", "settings"],
          value: "dark",
          versionstamp: first.versionstamp,
          metadata: expect.objectContaining({ version: 1, tags: ["ui"] }),
        },
        previous: null,
      });
      expect(ada).toMatchObject({
        versionstamp: second.ok && second.versionstamp,
        previous: { value: "dark" },
        entry: { value: "light", metadata: { version: 2 } },
      });
      expect(bob).toMatchObject({ key: ["users", "bob", "settings"], previous: null });
      expect(live.messages.every((message) => Array.isArray(message))).toBe(true);

      const later = await kv.set(["users", "cy", "settings"], "x");
      const resumed = await socket(
        server().url,
        events({ pattern: "users/+/settings", since: first.versionstamp }),
        ns,
      );
      try {
        const writes = await Promise.all(
          Array.from({ length: 10 }, (_, i) => kv.set(["users", `u${i}`, "settings"], i)),
        );
        const got = await resumed.take(13);
        const stamps = [second.ok && second.versionstamp, later.versionstamp];
        expect(got.map((event) => event.versionstamp)).toEqual([
          stamps[0],
          stamps[0],
          stamps[1],
          ...writes.map((write) => write.versionstamp),
        ]);
      } finally {
        resumed.close();
      }
    } finally {
      live.close();
    }
  });

  it("refuses bad input with an HTTP 4xx and a JSON body before accepting", async () => {
    const base = server().url;
    const cases: [string, Send, number, string][] = [
      [events({ pattern: "a/#/b" }), {}, 400, "INVALID_PATTERN"],
      [events({ pattern: "" }), {}, 400, "INVALID_PATTERN"],
      [events({ pattern: "a/~n:abc" }), {}, 400, "INVALID_PATTERN"],
      [events({ pattern: "a", since: "yesterday" }), {}, 400, "INVALID_REQUEST"],
      [events({ pattern: "a", extra: "1" }), {}, 400, "INVALID_REQUEST"],
      ["/api/events", {}, 400, "INVALID_REQUEST"],
      [
        events({ pattern: "a" }),
        { headers: { origin: "https://evil.example.com" } },
        403,
        "FORBIDDEN",
      ],
      [events({ pattern: "a" }), { namespace: "$reserved" }, 400, "INVALID_ARGUMENT"],
    ];
    for (const [path, options, status, code] of cases) {
      const reply = await refusedUpgrade(base, path, options);
      expect(reply.headers.connection).toBe("close");
      expectRefused(reply, status, code);
    }
    const allowed = await socket(base, events({ pattern: "a" }), {
      headers: { origin: "https://app.example.com" },
    });
    const sameOrigin = await socket(base, events({ pattern: "a" }), {
      headers: { origin: base },
    });
    allowed.close();
    sameOrigin.close();
    await until(() => subscriptions(server()) === 0);
  });

  it("serves every other upgrade request as an ordinary request", async () => {
    await server().kv.set(["plain"], "value");
    const upgrade = { connection: "Upgrade, HTTP2-Settings", upgrade: "h2c", "http2-settings": "" };
    const read = await send(server().url, "/api/keys/plain", { headers: upgrade });
    expect([read.status, read.json?.value]).toEqual([200, "value"]);
    const write = await send(server().url, "/api/keys/written", {
      method: "PUT",
      body: { value: 42 },
      headers: upgrade,
    });
    expect(write.status, write.text).toBe(200);
    expect((await server().kv.get(["written"])).value).toBe(42);
    const elsewhere = await send(server().url, "/api/keys/plain", {
      headers: { connection: "Upgrade", upgrade: "websocket" },
    });
    expect(elsewhere.json?.value).toBe("value");
  });

  it("closes a socket that sends a message", async () => {
    const chatty = await socket(server().url, events({ pattern: "a" }));
    chatty.ws.send("hello");
    expect((await chatty.closing()).code).toBe(1008);
    await until(() => subscriptions(server()) === 0);
  });
});

describe("slow readers", () => {
  const BIG = "x".repeat(512 * 1024);
  const server = serverFor({
    maxEventBuffer: 4096,
    openOptions: { limits: { maxValueSize: 1024 * 1024 } },
  });

  /**
   * Commits `n` big values (each event carries one twice: entry and previous), one flush each:
   * a connection is measured when it is written to.
   */
  async function writeBig(prefix: string, n: number): Promise<string[]> {
    const stamps: string[] = [];
    for (let i = 0; i < n; i++) {
      stamps.push((await server().kv.set([prefix, "big"], `${i}:${BIG}`)).versionstamp);
      await sleep(30);
    }
    return stamps;
  }

  it("closes an SSE stream that is not read, which resumes from its last id with everything after it", async () => {
    const stream = await sse(server().url, events({ pattern: "slow/#" }));
    const res = (stream as unknown as { res: IncomingMessage }).res;
    res.pause();
    const stamps = await writeBig("slow", 60);
    res.resume();
    const got = await rest(stream);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(60);
    expect(got.map((event) => event.id)).toEqual(stamps.slice(0, got.length));

    const resumed = await sse(server().url, events({ pattern: "slow/#" }), {
      headers: { "last-event-id": got.at(-1)!.id! },
    });
    try {
      const after = await take(resumed, 60 - got.length, 20_000);
      expect(after.map((event) => event.id)).toEqual(stamps.slice(got.length));
      expect(after.map((event) => Number.parseInt(event.data.entry.value, 10))).toEqual(
        Array.from({ length: 60 - got.length }, (_, i) => got.length + i),
      );
    } finally {
      resumed.close();
    }
    await until(() => subscriptions(server()) === 0);
  });

  it("closes a WebSocket that is not read with 1013, naming where to resume", async () => {
    const slow = await socket(server().url, events({ pattern: "wslow/#" }));
    slow.ws.pause();
    const stamps = await writeBig("wslow", 60);
    slow.ws.resume();
    const { code, reason } = await slow.closing(20_000);
    const got = slow.messages.flat();
    expect(code).toBe(1013);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(60);
    expect(got.map((event) => event.versionstamp)).toEqual(stamps.slice(0, got.length));
    const resume = got.at(-1)!.versionstamp as string;
    expect(reason).toBe(`SLOW_CONSUMER: resume after ${resume}`);

    const resumed = await socket(server().url, events({ pattern: "wslow/#", since: resume }));
    try {
      const after = await resumed.take(60 - got.length, 20_000);
      expect(after.map((event) => event.versionstamp)).toEqual(stamps.slice(got.length));
    } finally {
      resumed.close();
    }
    await until(() => subscriptions(server()) === 0);
  });
});

describe("fan-out", () => {
  const server = serverFor({});

  it("gives 200 SSE subscribers of one pattern every event of 50 commits, in order, through one subscription", async () => {
    const streams = await Promise.all(
      Array.from({ length: 200 }, () => sse(server().url, events({ pattern: "fan/+" }))),
    );
    const sockets = await Promise.all(
      Array.from({ length: 20 }, () => socket(server().url, events({ pattern: "fan/+" }))),
    );
    try {
      expect(streams.every((stream) => stream.status === 200)).toBe(true);
      // Every connection of one pattern shares one subscription per framing.
      expect(subscriptions(server())).toBe(2);
      const written: string[] = [];
      for (let i = 0; i < 50; i++) {
        const result = await server()
          .kv.atomic()
          .set(["fan", "a"], i)
          .set(["fan", "b"], i)
          .commit();
        if (result.ok) written.push(result.versionstamp);
      }
      const expected = written.flatMap((stamp, i) => [
        [stamp, "a", i],
        [stamp, "b", i],
      ]);
      const received = await Promise.all(streams.map((stream) => take(stream, 100)));
      for (const got of received) {
        expect(got.map((e) => [e.data.versionstamp, e.data.key[1], e.data.entry.value])).toEqual(
          expected,
        );
        expect(got.filter((e) => e.id !== undefined).map((e) => e.id)).toEqual(written);
      }
      for (const ws of sockets) {
        const got = await ws.take(100);
        expect(got.map((e) => [e.versionstamp, e.key[1], e.entry.value])).toEqual(expected);
      }
    } finally {
      for (const stream of streams) stream.close();
      for (const ws of sockets) ws.close();
    }
    await until(() => subscriptions(server()) === 0);
  });
});

describe("shutdown", () => {
  const certs = tempDir("cellar-events-tls-");
  afterAll(() => certs.cleanup());

  /** A self-signed certificate for 127.0.0.1, made by openssl. */
  function selfSigned(): { cert: Buffer; key: Buffer } {
    const cert = join(certs.path, "cert.pem");
    const key = join(certs.path, "key.pem");
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"],
        ...["-keyout", key, "-out", cert, "-subj", "/CN=localhost"],
        ...["-addext", "subjectAltName=IP:127.0.0.1"],
      ],
      { stdio: "ignore" },
    );
    return { cert: readFileSync(cert), key: readFileSync(key) };
  }

  it("ends SSE streams and closes WebSockets with 1001", async () => {
    const running = await serve();
    const stream = await sse(running.url, events({ pattern: "#" }));
    const ws = await socket(running.url, events({ pattern: "#" }));
    const closed = running.close();
    await until(() => stream.ended && ws.closed !== null);
    expect(ws.closed).toEqual({ code: 1001, reason: "the server is shutting down" });
    await closed;
  });

  it("serves the WebSocket form over TLS beside HTTP/2", async () => {
    const tls = selfSigned();
    const running = await serve({ tls });
    try {
      const refused = await refusedUpgrade(running.url, events({ pattern: "a/#/b" }), {
        ca: tls.cert,
      });
      expectRefused(refused, 400, "INVALID_PATTERN");
      const ws = await socket(running.url, events({ pattern: "t/#" }), { ca: tls.cert });
      const { versionstamp } = await running.kv.set(["t", 1], "over tls");
      expect(await ws.take(1)).toMatchObject([{ versionstamp, entry: { value: "over tls" } }]);
      const closed = running.close();
      expect((await ws.closing()).code).toBe(1001);
      await closed;
    } finally {
      await running.close();
    }
  });
});
