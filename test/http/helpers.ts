import { connect } from "node:net";
/** Plain HTTP against a real Cellar server: requests with full control of path and headers, SSE. */

import { mkdtempSync, rmSync } from "node:fs";
import { type Agent, type IncomingHttpHeaders, type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { afterAll, afterEach, beforeAll, beforeEach, expect, vi } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import { coreOf, WHOLE_DATABASE } from "../../src/core/surface.js";
import { type Kv, KvU64 } from "../../src/index.js";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/index.js";

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The parsed body, or `undefined` when it is not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected field by field
  readonly json: any;
}

export interface Send {
  readonly method?: string;
  /** Sent as JSON with `content-type: application/json`. */
  readonly body?: unknown;
  /** Sent as is, for malformed bodies; pair with a content-type header. */
  readonly raw?: string | Buffer;
  readonly headers?: Record<string, string>;
  readonly token?: string;
  readonly namespace?: string;
  /** Send the body chunked, without a Content-Length. */
  readonly chunked?: boolean;
  /** A keep-alive agent, for tests about connections that outlive a response. */
  readonly agent?: Agent;
}

const JSON_TYPE = { "content-type": "application/json" };

function headersOf(options: Send): Record<string, string> {
  return {
    ...(options.body !== undefined && JSON_TYPE),
    ...(options.token && { authorization: `Bearer ${options.token}` }),
    ...(options.namespace !== undefined && { "x-cellar-namespace": options.namespace }),
    ...options.headers,
  };
}

function open(base: string, path: string, options: Send): Promise<IncomingMessage> {
  const url = new URL(base);
  const payload =
    options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? (payload === undefined ? "GET" : "POST"),
        path,
        headers: {
          ...headersOf(options),
          ...(payload !== undefined &&
            !options.chunked && { "content-length": String(Buffer.byteLength(payload)) }),
        },
        // By default a fresh connection per request, so closing a server never waits on idle sockets.
        agent: options.agent ?? false,
      },
      resolve,
    );
    req.on("error", reject);
    if (payload !== undefined && options.chunked) {
      const bytes = Buffer.from(payload);
      for (let i = 0; i < bytes.length; i += 1024) req.write(bytes.subarray(i, i + 1024));
    } else if (payload !== undefined) {
      req.write(payload);
    }
    req.end();
  });
}

/** One request; the whole response body is read. `path` goes on the wire untouched. */
export async function send(base: string, path: string, options: Send = {}): Promise<Reply> {
  const res = await open(base, path, options);
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode ?? 0, headers: res.headers, text, json };
}

export interface SseEvent {
  readonly event: string | undefined;
  readonly id: string | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: event payloads are inspected field by field
  readonly data: any;
}

/** A Server-Sent Events response read event by event. */
export class EventStream {
  readonly #queue: SseEvent[] = [];
  #waiter: (() => void) | null = null;
  #ended = false;

  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    private readonly res: IncomingMessage,
  ) {
    const parser = createParser({
      onEvent: (message: EventSourceMessage) => {
        this.#queue.push({ event: message.event, id: message.id, data: JSON.parse(message.data) });
        this.#waiter?.();
      },
    });
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => parser.feed(chunk));
    const end = () => {
      this.#ended = true;
      this.#waiter?.();
    };
    res.on("end", end);
    res.on("close", end);
    res.on("error", end);
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** The next event; fails after `ms` or when the stream ends first. */
  async next(ms = 3000): Promise<SseEvent> {
    const deadline = Date.now() + ms;
    while (this.#queue.length === 0) {
      if (this.#ended) throw new Error("the event stream ended");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
    return this.#queue.shift()!;
  }

  /** Resolves to the events that arrived within `ms` (for asserting that none did). */
  async drain(ms: number): Promise<SseEvent[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.#queue.splice(0);
  }

  close(): void {
    this.res.destroy();
  }
}

export async function sse(base: string, path: string, options: Send = {}): Promise<EventStream> {
  const res = await open(base, path, {
    ...options,
    headers: { accept: "text/event-stream", ...options.headers },
  });
  return new EventStream(res.statusCode ?? 0, res.headers, res);
}

/** A server on a free loopback port over an in-memory database unless `db` says otherwise. */
export function serve(options: ServerOptions = {}): Promise<RunningServer> {
  return startServer({ db: ":memory:", port: 0, ...options });
}

/** A fresh folder under the system temp dir, removed by `cleanup`. */
export function tempDir(prefix: string): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Every stored entry of every namespace, with metadata, and the commit head: equal snapshots
 * mean nothing was written in between.
 */
export async function snapshot(kv: Kv): Promise<unknown> {
  const [entries] = await coreOf(kv).core.read(
    [{ start: Uint8Array.of(0x00), end: Uint8Array.of(0xff), limit: 100_000, reverse: false }],
    WHOLE_DATABASE,
    { metadata: true },
  );
  return { head: await kv.currentVersionstamp(), entries };
}

/** Runs `fn` with the in-process server's error log muted, for requests expected to log. */
export async function muted(fn: () => Promise<void>): Promise<void> {
  const spy = vi.spyOn(console, "error").mockImplementation(() => {});
  try {
    await fn();
  } finally {
    spy.mockRestore();
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends `text` as raw bytes to the server at `base` and resolves to its status line and JSON
 * body once it closes the connection: for requests no HTTP client would send.
 */
export function rawExchange(
  base: string,
  text: string,
): Promise<{ status: string; body: Reply["json"] }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(base).port), "127.0.0.1", () => socket.write(text));
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString();
    });
    socket.on("end", () =>
      resolve({
        status: answer.slice(0, answer.indexOf("\r\n")),
        body: JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)),
      }),
    );
    socket.on("error", reject);
  });
}

/**
 * Starts a server before the file's tests and closes it after them; the getter returns it.
 * Registered inside a `describe`, the server lives as long as that block.
 */
export function serverFor(options: ServerOptions = {}): () => RunningServer {
  let server: RunningServer | undefined;
  beforeAll(async () => {
    server = await serve(options);
  });
  afterAll(() => server?.close());
  return () => {
    if (!server) throw new Error("the server is not started yet");
    return server;
  };
}

/** The server of the HTTP API's own tests: history keeps values under `audit`, pings every 200 ms. */
export const apiServer = () =>
  serverFor({ openOptions: { history: { keepValues: [["audit"]] } }, pingInterval: 200 });

export const VERSIONSTAMP = /^[0-9a-f]{20}$/;
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A query string of `params`, an array value repeating its name. */
export const query = (params: Record<string, string | string[]>) => {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  return `?${search}`;
};

/** The value `GET /api/keys/{path}` answers. */
export const valueAt = async (base: string, path: string, options: Send = {}) =>
  (await send(base, `/api/keys/${path}`, options)).json.value;

/** Asserts an error reply: its status, its stable code and a message. */
export function expectError(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.json?.error?.code }, reply.text).toEqual({
    status,
    code,
  });
  expect(reply.json.error.message).toEqual(expect.any(String));
}

/** Requests confined to one namespace, so each block of tests starts from an empty key space. */
export function scoped(server: () => RunningServer, namespace: string) {
  const call = (path: string, options: Send = {}) =>
    send(server().url, path, { namespace, ...options });
  return {
    call,
    kv: () => server().kv.namespace(namespace),
    put: async (path: string, body: object) => {
      const reply = await call(`/api/keys/${path}`, { method: "PUT", body });
      expect(reply.status, reply.text).toBe(200);
      return reply.json.versionstamp as string;
    },
    get: async (path: string, q = "") => (await call(`/api/keys/${path}${q}`)).json,
    atomic: (body: object) => call("/api/atomic", { body }),
  };
}

export const ADMIN = "admin-token-000000000000";
export const A_WRITER = "a-writer-token-000000000";
export const MAX_BODY = 16 * 1024;
export const MAX_KEY = 128;
export const MAX_VALUE = 1024;

/** A stored key (namespace first) as the driver protocol carries it. */
export const stored = (namespace: string, ...key: string[]) =>
  Buffer.from(encodeKey([namespace, ...key])).toString("base64url");
export const json = (body: unknown): Send => ({ body });
export const raw = (text: string, contentType = "application/json"): Send => ({
  raw: text,
  headers: { "content-type": contentType },
});
export const q = encodeURIComponent;

/** Asserts a refusal: a 4xx (`status` exactly, unless null) with a JSON error of one of `codes`. */
export function expectRefused(reply: Reply, status: number | null, codes: string | string[]): void {
  const accepted = Array.isArray(codes) ? codes : [codes];
  expect(reply.status, reply.text).toBeGreaterThanOrEqual(400);
  expect(reply.status, reply.text).toBeLessThan(500);
  if (status !== null) expect(reply.status, reply.text).toBe(status);
  expect(reply.headers["content-type"]).toMatch(/^application\/json/);
  expect(reply.json, reply.text).toEqual({
    error: { code: expect.any(String), message: expect.any(String) },
  });
  expect(accepted, reply.text).toContain(reply.json.error.code);
  expect(reply.json.error.message.length).toBeGreaterThan(0);
}

/**
 * The server the malformed-request tests share: an admin and a writer of namespace `a`, small
 * limits, a few seeded entries. After each test it asserts that nothing was written, in any
 * namespace, whatever was refused. `call` sends as the admin; `refused` asserts a refusal.
 */
export function hostileServer() {
  const server = serverFor({
    tokens: [
      { token: ADMIN, namespaces: ["*"], access: "admin" },
      { token: A_WRITER, namespaces: ["a"], access: "write" },
    ],
    maxBodySize: MAX_BODY,
    maxPageSize: 50,
    maxWatchKeys: 3,
    openOptions: {
      limits: {
        maxKeySize: MAX_KEY,
        maxValueSize: MAX_VALUE,
        maxMutations: 10,
        maxChecks: 5,
        maxReadKeys: 5,
      },
    },
  });
  beforeAll(async () => {
    const kv = server().kv;
    await kv.set(["existing"], "untouched", { tags: ["seed"] });
    await kv.set(["text"], "not a number");
    await kv.set(["counter"], new KvU64(1n));
    await kv.set(["list"], [1]);
    for (const i of [1, 2, 3]) await kv.set(["items", i], i);
    await kv.namespace("a").set(["x"], "in a");
    await kv.namespace("b").set(["x"], "in b");
  });

  let before: unknown;
  beforeEach(async () => {
    before = await snapshot(server().kv);
  });
  afterEach(async () => {
    expect(await snapshot(server().kv)).toEqual(before);
  });

  const call = (path: string, options: Send = {}) =>
    send(server().url, path, { token: ADMIN, ...options });
  const refused = async (
    path: string,
    options: Send,
    status: number | null,
    codes: string | string[],
  ) => expectRefused(await call(path, options), status, codes);
  return { server, call, refused };
}
