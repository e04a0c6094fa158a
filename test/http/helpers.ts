import { connect } from "node:net";
/** Plain HTTP against a real Cellar server: requests with full control of path and headers, SSE. */

import { mkdtempSync, rmSync } from "node:fs";
import { type Agent, type IncomingHttpHeaders, type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { vi } from "vitest";
import { coreOf, WHOLE_DATABASE } from "../../src/core/surface.js";
import type { Kv } from "../../src/index.js";
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
