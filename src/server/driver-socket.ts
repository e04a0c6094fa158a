/**
 * The driver socket at `/api/driver/socket` (frames: `wire/driver-socket.ts`): the remote
 * client's calls over one WebSocket, run by the same `driver-calls.ts` as `POST /api/driver/*`.
 *
 * The connection is admitted as an HTTP request is: the token (`Authorization: Bearer`, or
 * `?token=`), the namespace (`X-Cellar-Namespace`, or `?namespace=`) and the page's origin are
 * checked once, at the upgrade, and every call on it then works in that scope, checking its own
 * access (read, write, admin) and namespaces as its HTTP route does. Frames are limited to the
 * server's body size. Calls run concurrently and are answered as they finish, each with its id.
 *
 * Closes: 4400 a frame that is not a call, 4401 no or a bad token, 4403 another origin or a
 * namespace the token may not use (each with the reason `CODE: message`); 1009 a frame over the
 * size limit (`ws` closes it); 1013 a client that does not read its answers, or a server that
 * holds its maximum of open streams; 1001 at shutdown,
 * once the calls under way are answered. A refused call answers its own error; the connection
 * stays.
 */
import type { IncomingMessage } from "node:http";
import type { WebSocket } from "ws";
import { bareMessage, describe, KvError } from "../errors.js";
import {
  type Authenticator,
  assertAccess,
  NAMESPACE_HEADER,
  type RequestScope,
} from "../http/auth.js";
import { errorResponse, statusOf } from "../http/errors.js";
import type { StreamRegistry } from "../http/streams.js";
import {
  DRIVER_SOCKET_PATH,
  decodeCallFrame,
  errorFrame,
  isDriverOp,
  READY_FRAME,
  resultFrame,
} from "../wire/driver-socket.js";
import type { DriverOp } from "../wire/protocol.js";
import {
  CLOSE_CODES,
  CLOSE_GOING_AWAY,
  CLOSE_SERVER_ERROR,
  CLOSE_TRY_LATER,
  closeReason,
} from "../workspace/protocol.js";
import type { RequestObserver } from "./requests.js";
import type { DriverCall } from "./routes/driver-calls.js";
import { assertOrigin, header, socketRoute, type UpgradeRoute } from "./websocket.js";

export interface DriverSocketOptions {
  readonly calls: Readonly<Record<DriverOp, DriverCall>>;
  readonly authenticate: Authenticator;
  readonly cors: readonly string[];
  readonly streams: StreamRegistry;
  /** The largest frame a client may send, in bytes: the server's body size limit. */
  readonly maxPayload: number;
  /** Bytes a connection may hold unsent before it is closed (1013). */
  readonly maxBuffered: number;
  /** Milliseconds between pings; a connection that misses one is dropped (default 30 s). */
  readonly pingInterval?: number;
  /** Counts and logs each call as a request (method `WS`, route `/api/driver/<op>`). */
  readonly observer?: RequestObserver;
}

/** Calls one connection runs at once; past it, the server reads no more frames until one ends. */
const MAX_IN_FLIGHT = 256;
const CLOSE_GRACE_MS = 1000;

/**
 * The upgrade route of `/api/driver/socket`.
 *
 * @example
 * acceptEventSockets(server, eventSockets, [driverSocketRoute({ calls, authenticate, cors, streams, maxPayload, maxBuffered })]);
 */
export function driverSocketRoute(options: DriverSocketOptions): UpgradeRoute {
  return socketRoute(
    options.maxPayload,
    (url) => (url.pathname === DRIVER_SOCKET_PATH ? true : null),
    (ws, req, url) => {
      let scope: RequestScope;
      try {
        scope = admit(req, url, options);
      } catch (error) {
        closeWith(ws, error);
        return;
      }
      new DriverConnection(ws, scope, options).start();
    },
  );
}

function admit(req: IncomingMessage, url: URL, options: DriverSocketOptions): RequestScope {
  assertOrigin(req, options.cors, "call this server's driver protocol");
  const { scope } = options.authenticate({
    authorization: req.headers.authorization,
    namespace: header(req, NAMESPACE_HEADER) ?? url.searchParams.get("namespace") ?? undefined,
    host: req.headers.host,
    queryToken: () => url.searchParams.get("token") ?? undefined,
  });
  assertAccess(scope, "read");
  return scope;
}

/**
 * Closes with 44xx for a client's mistake (its own code, else 4400), 1013 when the server holds
 * its maximum of streams, 1011 for the server's fault.
 */
function closeWith(ws: WebSocket, error: unknown): void {
  const kvError = error instanceof KvError ? error : null;
  const code =
    kvError?.code === "LIMIT_EXCEEDED"
      ? CLOSE_TRY_LATER
      : kvError && statusOf(kvError.code) < 500
        ? (CLOSE_CODES[kvError.code] ?? CLOSE_CODES.INVALID_REQUEST!)
        : CLOSE_SERVER_ERROR;
  const reason = closeReason(
    kvError?.code ?? "UNAVAILABLE",
    kvError ? kvError.message : bareMessage(error as Error),
  );
  if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
}

class DriverConnection {
  #inFlight = 0;
  #paused = false;
  /** Shutdown began: the connection closes once its calls under way are answered. */
  #draining = false;
  #ended = false;
  #alive = true;
  #release: () => void = () => {};
  #ping: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly scope: RequestScope,
    private readonly options: DriverSocketOptions,
  ) {}

  start(): void {
    const { ws } = this;
    try {
      this.#release = this.options.streams.add(() => this.#drain());
    } catch (error) {
      closeWith(ws, error);
      return;
    }
    this.#ping = setInterval(() => {
      if (!this.#alive) ws.terminate();
      this.#alive = false;
      ws.ping();
    }, this.options.pingInterval ?? 30_000);
    this.#ping.unref();
    ws.on("pong", () => {
      this.#alive = true;
    });
    ws.on("close", () => this.#end());
    ws.on("message", (data, isBinary) => this.#receive(data as Buffer, isBinary));
    ws.send(READY_FRAME);
  }

  #receive(data: Buffer, isBinary: boolean): void {
    if (this.#ended) return;
    let frame: ReturnType<typeof decodeCallFrame>;
    try {
      if (isBinary) throw new KvError("INVALID_REQUEST", "frames are JSON text, not binary");
      frame = decodeCallFrame(data.toString());
    } catch (error) {
      closeWith(this.ws, error);
      this.#end();
      return;
    }
    this.#inFlight++;
    if (this.#inFlight >= MAX_IN_FLIGHT && !this.#paused) {
      this.#paused = true;
      this.ws.pause();
    }
    void this.#answer(frame.id, frame.op, frame.body).then((text) => {
      this.#inFlight--;
      this.#send(text);
      if (this.#paused && this.#inFlight < MAX_IN_FLIGHT / 2 && !this.#ended) {
        this.#paused = false;
        this.ws.resume();
      }
      if (this.#draining && this.#inFlight === 0) this.#goAway();
    });
  }

  /** Runs one call; resolves to its answer frame, never rejects. */
  async #answer(id: number, op: unknown, body: unknown): Promise<string> {
    const observer = this.options.observer;
    const request = observer?.begin(undefined);
    let status = 200;
    let text: string;
    try {
      if (!isDriverOp(op)) throw new KvError("INVALID_REQUEST", `unknown op ${describe(op)}`);
      if (typeof body !== "object" || body === null || Array.isArray(body))
        throw new KvError("INVALID_REQUEST", "the body must be a JSON object");
      const call = this.options.calls[op];
      if (call.access) assertAccess(this.scope, call.access);
      const run = () => call.run(this.scope, body as Record<string, unknown>);
      const result = await (observer && request ? observer.within(request, run) : run());
      text = resultFrame(id, JSON.stringify(result));
    } catch (error) {
      const response = errorResponse(error);
      status = response.status;
      text = errorFrame(id, response.body);
    }
    if (observer && request)
      observer.end(request, {
        method: "WS",
        route: isDriverOp(op) ? `/api/driver/${op}` : DRIVER_SOCKET_PATH,
        path: DRIVER_SOCKET_PATH,
        status,
        token: this.scope.grant?.name,
      });
    return text;
  }

  #send(text: string): void {
    const { ws } = this;
    if (this.#ended || ws.readyState !== ws.OPEN) return;
    ws.send(text);
    if (ws.bufferedAmount > this.options.maxBuffered) {
      ws.close(CLOSE_TRY_LATER, closeReason("SLOW_CONSUMER", "read the answers, then reconnect"));
      this.#end();
    }
  }

  /** Shutdown: no new connection, and this one closes once its calls are answered. */
  #drain(): void {
    this.#draining = true;
    if (this.#inFlight === 0) this.#goAway();
  }

  #goAway(): void {
    const { ws } = this;
    if (ws.readyState === ws.OPEN) ws.close(CLOSE_GOING_AWAY, "the server is shutting down");
    setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearInterval(this.#ping);
    this.#release();
  }
}
