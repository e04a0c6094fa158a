/**
 * The remote driver's socket: its calls as frames on one WebSocket to the server's driver socket
 * (`wire/driver-socket.ts`), each answered in about one network round trip, many in flight at
 * once. The driver uses it while it is up and falls back to HTTP for everything else: while it
 * connects or reconnects, for a frame larger than the server takes, and for good when the server
 * has no driver socket.
 *
 * When the socket drops, the calls it had in flight are settled so none is applied twice: a call
 * that only reads is sent again (over HTTP, or the new socket); one that writes is rejected with
 * `UNAVAILABLE`, as an HTTP request cut off in flight is, since the server may or may not have
 * applied it. The next call after a drop starts a reconnect, at most one attempt per pause
 * (50 ms doubling to 2 s while attempts fail), so an idle client holds no timer.
 */
import { KvError } from "../../errors.js";
import { answerError, callFrame, decodeServerFrame } from "../../wire/driver-socket.js";
import type { DriverOp } from "../../wire/protocol.js";

/** One open WebSocket, as the channel drives it. */
export interface SocketConnection {
  send(text: string): void;
  close(): void;
}

/** What a connection reports to the channel. */
export interface SocketEvents {
  message(text: string): void;
  /**
   * The connection closed, or never opened; `status` is the HTTP status the server answered
   * the upgrade with instead of accepting it.
   */
  closed(info: { code: number; reason: string; status?: number }): void;
}

/**
 * Opens a WebSocket to `url` with `headers` (`ws` in Node, `ws-socket.ts`).
 *
 * @example
 * const channel = new SocketChannel(origin, info.socket, { authorization }, wsConnector);
 */
export type SocketConnector = (
  url: URL,
  headers: Record<string, string>,
  events: SocketEvents,
) => SocketConnection;

interface Pending {
  readonly op: DriverOp;
  readonly retry: boolean;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  /** Sends the call again, the way the driver would now (for a read cut off by a drop). */
  readonly again: () => Promise<unknown>;
}

/**
 * Upgrade statuses of a server without the driver socket: it is not tried again, nor after a
 * refusal at the upgrade (4400–4499), which the same call over HTTP reports as well.
 */
const NO_ROUTE = new Set([400, 404, 405, 426, 501]);
const FIRST_PAUSE_MS = 50;
const MAX_PAUSE_MS = 2000;

const encoder = new TextEncoder();

export class SocketChannel {
  readonly #url: URL;
  #connection: SocketConnection | null = null;
  #ready = false;
  #connecting: Promise<boolean> | null = null;
  /** Settles `#connecting`. */
  #settle: (ready: boolean) => void = () => {};
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;
  #retryAt = 0;
  #pause = FIRST_PAUSE_MS;
  /** Closed by the driver, or the server has no driver socket. */
  #gone = false;

  readonly #maxFrame: number;

  /**
   * `origin` is the server's URL, `socket` what its info says of its driver socket (path, and
   * the largest frame it takes), `headers` the token and namespace headers.
   */
  constructor(
    origin: URL,
    socket: { readonly path: string; readonly maxFrame: number },
    private readonly headers: Record<string, string>,
    private readonly connector: SocketConnector,
  ) {
    this.#maxFrame = socket.maxFrame;
    const url = new URL(origin.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.pathname = url.pathname.replace(/\/$/, "") + socket.path;
    url.search = "";
    url.hash = "";
    this.#url = url;
  }

  /** Whether calls go over the socket now. */
  get ready(): boolean {
    return this.#ready;
  }

  /**
   * Connects unless connected, connecting, or pausing after a failed attempt; resolves to
   * whether the socket is ready.
   */
  connect(): Promise<boolean> {
    if (this.#ready) return Promise.resolve(true);
    if (this.#connecting) return this.#connecting;
    if (this.#gone || Date.now() < this.#retryAt) return Promise.resolve(false);
    this.#connecting = new Promise<boolean>((resolve) => {
      this.#settle = resolve;
    });
    let opened = false;
    const settle = (ready: boolean) => {
      this.#connecting = null;
      this.#settle(ready);
    };
    const connection = this.connector(this.#url, this.headers, {
      message: (text) => {
        if (this.#connection !== connection) return;
        if (opened) {
          this.#answer(text);
          return;
        }
        opened = isReady(text);
        if (!opened) {
          connection.close();
          return;
        }
        this.#ready = true;
        this.#pause = FIRST_PAUSE_MS;
        settle(true);
      },
      closed: ({ code, status }) => {
        if (this.#connection !== connection) return;
        this.#dropped();
        // No such route, or a refusal of the token or namespace that HTTP reports as well.
        if (
          (status !== undefined && NO_ROUTE.has(status)) ||
          (!opened && code >= 4400 && code < 4500)
        )
          this.#gone = true;
        if (!opened) {
          this.#retryAt = Date.now() + this.#pause;
          this.#pause = Math.min(this.#pause * 2, MAX_PAUSE_MS);
          settle(false);
        }
      },
    });
    this.#connection = connection;
    return this.#connecting;
  }

  /**
   * Sends a call whose body is the JSON text `body`, if the socket is ready and the frame fits;
   * else returns `null`, and the caller sends it over HTTP (and this starts a reconnect when one
   * is due). `retry`: the call only reads, so a drop sends it again with `again`.
   */
  call(
    op: DriverOp,
    body: string,
    retry: boolean,
    again: () => Promise<unknown>,
  ): Promise<unknown> | null {
    if (!this.#ready) {
      if (!this.#connecting && !this.#gone) void this.connect();
      return null;
    }
    const id = this.#nextId++;
    const frame = callFrame(id, op, body);
    if (frame.length * 3 > this.#maxFrame && encoder.encode(frame).byteLength > this.#maxFrame)
      return null;
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { op, retry, resolve, reject, again });
      this.#connection!.send(frame);
    });
  }

  /** Closes the socket; calls in flight fail with `DATABASE_CLOSED`. */
  close(): void {
    this.#gone = true;
    const connection = this.#connection;
    this.#connection = null;
    this.#ready = false;
    connection?.close();
    this.#connecting = null;
    this.#settle(false);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of pending)
      call.reject(
        new KvError("DATABASE_CLOSED", "the database was closed before the server answered"),
      );
  }

  #answer(text: string): void {
    let frame: ReturnType<typeof decodeServerFrame>;
    try {
      frame = decodeServerFrame(text);
    } catch {
      // Not a server this client understands: start over, as after a drop, but not at once.
      this.#connection?.close();
      this.#dropped();
      this.#retryAt = Date.now() + MAX_PAUSE_MS;
      return;
    }
    if (!("id" in frame)) return;
    const call = this.#pending.get(frame.id);
    if (!call) return;
    this.#pending.delete(frame.id);
    if ("result" in frame) call.resolve(frame.result);
    else call.reject(answerError(frame.error));
  }

  /** The socket is gone: reads in flight are sent again, writes fail as HTTP's would. */
  #dropped(): void {
    this.#connection = null;
    this.#ready = false;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of pending) {
      if (call.retry) call.again().then(call.resolve, call.reject);
      else
        call.reject(
          new KvError(
            "UNAVAILABLE",
            `the connection to the server dropped before it answered a ${call.op} call; it may or may not have been applied`,
          ),
        );
    }
  }
}

function isReady(text: string): boolean {
  try {
    return "ready" in decodeServerFrame(text);
  } catch {
    return false;
  }
}
