/**
 * The sync client: one WebSocket to the server's `/api/sync` at a time, reopened with backoff
 * while the store is open. On each connection it says hello with the replica's resume point,
 * then sends every pending outbox write in order; it hands each server message to the replica.
 * A connection refused for good (a bad token, a forbidden namespace: close codes 4401, 4403,
 * 4400) is not retried until `connect()` is called again.
 */

import { utf8Length } from "../codec/bytes.js";
import type { KvKey } from "../codec/key.js";
import type { KvErrorCode } from "../errors.js";
import {
  decodeServerMessage,
  encodeClientMessage,
  type ServerMessage,
  SYNC_PATH,
} from "../wire/sync.js";
import { idOf } from "./replica.js";
import type { SyncWriteError, WebSocketInstance, WebSocketLike } from "./types.js";

const OPEN = 1;

export interface SyncClientOptions {
  readonly url: string;
  readonly token?: string;
  readonly namespace?: string;
  readonly prefixes: readonly KvKey[];
  readonly client: string;
  readonly WebSocket: WebSocketLike;
  readonly reconnectDelay: number;
  readonly maxReconnectDelay: number;
  /** The replica's resume point, read at each hello. */
  readonly cursor: () => string | null;
  /** The writes to send, oldest first, read at each connection and each `flush`. */
  readonly toSend: () => Iterable<{
    id: number;
    mutations: readonly unknown[];
    checks: readonly unknown[];
    base: readonly (string | null)[];
  }>;
  readonly onMessage: (message: ServerMessage) => void;
  /** A write that cannot be sent (larger than the server takes): refuse it as the server would. */
  readonly onRefusedLocally: (id: number, error: SyncWriteError) => void;
  readonly onState: (
    state: "connecting" | "open" | "offline",
    error: SyncWriteError | null,
  ) => void;
}

/** The key ids a write writes, and all it names (checks too): worked out once per write. */
const keyIds = new WeakMap<object, { written: string[]; all: string[] }>();

function keysOf(write: {
  readonly mutations: readonly unknown[];
  readonly checks: readonly unknown[];
}): { written: string[]; all: string[] } {
  let ids = keyIds.get(write);
  if (!ids) {
    const keyOf = (m: unknown) => idOf((m as { key: KvKey }).key);
    const written = write.mutations.map(keyOf);
    ids = { written, all: [...written, ...write.checks.map(keyOf)] };
    keyIds.set(write, ids);
  }
  return ids;
}

/** Close codes after which reconnecting cannot help: the server refused the client (44xx). */
const isFatal = (code: number) => code >= 4400 && code < 4500;

export class SyncClient {
  #ws: WebSocketInstance | null = null;
  #wanted = false;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** The highest write id sent on the current connection. */
  #sent = 0;

  constructor(private readonly options: SyncClientOptions) {}

  get connected(): boolean {
    return this.#ws?.readyState === OPEN;
  }

  /** Whether it keeps trying to connect (not after `disconnect()` or a refusal for good). */
  get retrying(): boolean {
    return this.#wanted;
  }

  /** The largest message the server takes, from its welcome. */
  #maxMessage = Number.POSITIVE_INFINITY;

  connect(): void {
    this.#wanted = true;
    this.#attempt = 0;
    if (!this.#ws && !this.#timer) this.#open();
  }

  disconnect(): void {
    this.#wanted = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const ws = this.#ws;
    this.#ws = null;
    ws?.close(1000, "the client went offline");
    this.options.onState("offline", null);
  }

  /**
   * Sends the pending writes not sent on this connection yet, in order, up to the first that
   * writes a key an unanswered write also writes: that one was made on the other's value, and
   * is based on its commit only once the answer names that commit.
   */
  flush(): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== OPEN) return;
    const inFlight = new Set<string>();
    for (const write of this.options.toSend()) {
      const { written, all } = keysOf(write);
      if (write.id <= this.#sent) {
        for (const key of written) inFlight.add(key);
        continue;
      }
      if (all.some((key) => inFlight.has(key))) return;
      const text = encodeClientMessage({
        type: "write",
        id: write.id,
        ...(this.options.namespace !== undefined && { namespace: this.options.namespace }),
        mutations: write.mutations as never,
        checks: write.checks as never,
        base: write.base,
      });
      // The server would close the socket on it, and the write would be sent again forever.
      if (utf8Length(text) > this.#maxMessage) {
        this.options.onRefusedLocally(write.id, {
          code: "PAYLOAD_TOO_LARGE",
          message: `this write is ${utf8Length(text)} bytes as sent; the server takes at most ${this.#maxMessage}`,
        });
        continue;
      }
      for (const key of written) inFlight.add(key);
      ws.send(text);
      this.#sent = write.id;
    }
  }

  #open(): void {
    this.#timer = null;
    if (!this.#wanted) return;
    this.options.onState("connecting", null);
    const url = new URL(SYNC_PATH, this.options.url.replace(/^http/, "ws"));
    if (this.options.token) url.searchParams.set("token", this.options.token);
    if (this.options.namespace !== undefined)
      url.searchParams.set("namespace", this.options.namespace);
    let ws: WebSocketInstance;
    try {
      ws = new this.options.WebSocket(url.href);
    } catch (error) {
      this.#retry({ code: "UNAVAILABLE", message: (error as Error).message });
      return;
    }
    this.#ws = ws;
    this.#sent = 0;
    ws.onopen = () => {
      if (this.#ws !== ws) return;
      const since = this.options.cursor();
      ws.send(
        encodeClientMessage({
          type: "hello",
          client: this.options.client,
          prefixes: this.options.prefixes,
          ...(since !== null && { since }),
        }),
      );
      this.options.onState("open", null);
      this.flush();
    };
    ws.onmessage = (event) => {
      if (this.#ws !== ws) return;
      let message: ServerMessage;
      try {
        message = decodeServerMessage(
          typeof event.data === "string" ? event.data : String(event.data),
        );
      } catch (error) {
        ws.close(4400, `INVALID_REQUEST: ${(error as Error).message}`.slice(0, 120));
        return;
      }
      if (message.type === "welcome") {
        this.#attempt = 0;
        this.#maxMessage = message.maxMessage ?? Number.POSITIVE_INFINITY;
      }
      this.options.onMessage(message);
    };
    ws.onerror = () => {};
    ws.onclose = (event) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      const error = closeError(event.code, event.reason);
      if (isFatal(event.code)) {
        this.#wanted = false;
        this.options.onState("offline", error);
        return;
      }
      this.#retry(error);
    };
  }

  #retry(error: SyncWriteError | null): void {
    this.#ws = null;
    this.options.onState("offline", error);
    if (!this.#wanted) return;
    const { reconnectDelay, maxReconnectDelay } = this.options;
    const delay = Math.min(maxReconnectDelay, reconnectDelay * 2 ** this.#attempt++);
    // Jitter, so that clients a server dropped together do not come back together.
    this.#timer = setTimeout(() => this.#open(), delay * (0.5 + Math.random() / 2));
  }
}

/** The reason a socket closed, as the server put it (`CODE: message`). */
function closeError(code: number, reason: string): SyncWriteError | null {
  if (code === 1000) return null;
  const match = /^([A-Z_]+): (.*)$/s.exec(reason);
  if (match) return { code: match[1] as KvErrorCode, message: match[2]! };
  return { code: "UNAVAILABLE", message: reason || `the connection closed (${code})` };
}
