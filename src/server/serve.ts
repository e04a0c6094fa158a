/**
 * Runs the HTTP application on a port, and stops it gracefully: stop accepting connections,
 * end watch streams, let in-flight requests finish, then close the database so every
 * acknowledged write is on disk.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createSecureServer, type Http2SecureServer, type Http2Session } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type { Kv } from "../core/kv.js";
import { KvError } from "../errors.js";
import { loadTokens } from "../http/auth.js";
import { adapterError, errorBody } from "../http/errors.js";
import { shareWithHttp2 } from "../kv-connect/h2c.js";
import { withLogging } from "../observe/logging.js";
import { type OpenKvOptions, openKv } from "../open.js";
import { type AppOptions, createApp } from "./app.js";
import { acceptEventSockets } from "./websocket.js";

export interface ServerOptions extends AppOptions {
  /**
   * A database file path, `:memory:`, or an open Kv (default `data/cellar.db`). A database the
   * server opens gets `withLogging` on `logger` (its operation lines, at `debug`); an open Kv
   * keeps the layers it was given.
   */
  readonly db?: string | Kv;
  readonly openOptions?: OpenKvOptions;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
  /** Path of a tokens file (see `loadTokens`); alternative to `tokens`. */
  readonly tokensFile?: string;
  /** Allow a non-loopback host without tokens. */
  readonly insecure?: boolean;
  /**
   * Serve HTTPS with this certificate and key (PEM): HTTP/1.1 and HTTP/2, chosen by ALPN, on one
   * port. Without it the server speaks cleartext HTTP/1.1 and HTTP/2 with prior knowledge.
   */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

export interface RunningServer {
  readonly url: string;
  readonly kv: Kv;
  /** Graceful stop; resolves once the database is closed. */
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const tokens = options.tokensFile ? loadTokens(options.tokensFile) : options.tokens;
  if (!LOOPBACK.test(host) && !tokens?.length && !options.insecure) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `refusing to listen on ${host} without a tokens file: pass --tokens <file>, or --insecure to allow anyone on the network`,
    );
  }
  const kv =
    typeof options.db === "object"
      ? options.db
      : await openKv(options.db ?? "data/cellar.db", options.openOptions);
  if (typeof options.db !== "object" && options.logger)
    withLogging(kv, { logger: options.logger, keys: options.logKeys === true });
  const {
    app,
    fastPath,
    endStreams,
    eventSockets,
    upgradeRoutes,
    close: closeApp,
  } = createApp(kv, {
    ...options,
    ...(tokens && { tokens }),
  });
  const hono = getRequestListener(app.fetch, { hostname: host, errorHandler: adapterError });
  // HTTP/1.1 requests meet the fast path first; HTTP/2 ones (see shareWithHttp2) go to Hono.
  const server: Server | Http2SecureServer = options.tls
    ? createSecureServer(
        { cert: options.tls.cert, key: options.tls.key, allowHTTP1: true },
        (req, res) => {
          const http1 = req.httpVersionMajor === 1;
          if (
            !http1 ||
            !fastPath(req as unknown as IncomingMessage, res as unknown as ServerResponse)
          )
            void hono(req, res);
        },
      )
    : createServer((req, res) => {
        if (!fastPath(req, res)) void hono(req, res);
      });
  if (!options.tls) server.on("clientError", answerClientError);
  acceptEventSockets(server, eventSockets, upgradeRoutes);

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 8080, host, resolve);
    });
  } catch (cause) {
    await closeApp();
    if (typeof options.db !== "object") await kv.close();
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === "EADDRINUSE" ? "the port is already in use" : (cause as Error).message;
    throw new KvError(
      "UNAVAILABLE",
      `cannot listen on ${host}:${options.port ?? 8080}: ${reason}`,
      { cause },
    );
  }
  const connections = options.tls
    ? trackSecure(server as Http2SecureServer)
    : shareWithHttp2(server as Server, app.fetch, host);
  const { port } = server.address() as AddressInfo;
  const url = `${options.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | null = null;
  return {
    url,
    kv,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        endStreams();
        connections.close();
        if ("closeIdleConnections" in server) {
          // Keep-alive connections become idle as their last responses finish; close them as they do.
          const sweep = setInterval(() => server.closeIdleConnections(), 25);
          server.closeIdleConnections();
          await stopped;
          clearInterval(sweep);
        } else {
          await stopped;
        }
        try {
          await closeApp();
        } finally {
          await kv.close();
        }
      })();
      return closing;
    },
  };
}

const CLIENT_ERRORS: Record<string, [number, string, string]> = {
  HPE_HEADER_OVERFLOW: [
    431,
    "Request Header Fields Too Large",
    "the request line and headers are larger than the server accepts (16 KiB)",
  ],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [
    413,
    "Payload Too Large",
    "the request's chunk extensions are larger than the server accepts",
  ],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "the request took too long to arrive"],
};

/**
 * What node answers for a request it cannot parse, with the usual JSON error body where node
 * would send none.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A response already under way on the socket (a stream) must not get another in its middle.
  const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || answering?.headersSent || error.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const [status, reason, message] = CLIENT_ERRORS[error.code ?? ""] ?? [
    400,
    "Bad Request",
    `malformed HTTP request (${error.code ?? error.message})`,
  ];
  const body = JSON.stringify(
    errorBody(status === 431 || status === 413 ? "PAYLOAD_TOO_LARGE" : "INVALID_REQUEST", message),
  );
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Graceful stop of a TLS server's connections, which node's secure HTTP/2 server does not track
 * for HTTP/1.1: sessions finish their open streams and close; an HTTP/1.1 connection closes
 * once it has no response in flight.
 */
function trackSecure(server: Http2SecureServer): { close(): void } {
  const sessions = new Set<Http2Session>();
  const inFlight = new Map<Socket, number>();
  let closing = false;
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.on("error", () => {});
    session.once("close", () => sessions.delete(session));
    // A connection accepted just before the stop may become a session just after it.
    if (closing) session.close();
  });
  server.on("secureConnection", (socket: Socket & { alpnProtocol?: string | false }) => {
    if (socket.alpnProtocol === "h2") return;
    if (closing) {
      socket.destroy();
      return;
    }
    inFlight.set(socket, 0);
    socket.once("close", () => inFlight.delete(socket));
  });
  // An upgraded connection (a WebSocket) is HTTP no more: whoever took it closes it.
  server.on("upgrade", (_req: IncomingMessage, socket: Socket) => inFlight.delete(socket));
  server.on("request", (req: { httpVersionMajor: number; socket: Socket }, res: ServerResponse) => {
    if (req.httpVersionMajor !== 1) return;
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once("close", () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      inFlight.set(socket, left);
      if (closing && left === 0) socket.destroy();
    });
  });
  return {
    close() {
      closing = true;
      for (const session of sessions) session.close();
      for (const [socket, count] of inFlight) if (count === 0) socket.destroy();
    },
  };
}
