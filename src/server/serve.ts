/**
 * Runs the HTTP application on a port, and stops it gracefully: stop accepting connections,
 * end watch streams, let in-flight requests finish, then close the database so every
 * acknowledged write is on disk.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import type { Kv } from "../core/kv.js";
import { KvError } from "../errors.js";
import { loadTokens } from "../http/auth.js";
import { adapterError, errorBody } from "../http/errors.js";
import { shareWithHttp2 } from "../kv-connect/h2c.js";
import { type OpenKvOptions, openKv } from "../open.js";
import { type AppOptions, createApp } from "./app.js";

export interface ServerOptions extends AppOptions {
  /** A database file path, `:memory:`, or an open Kv (default `data/cellar.db`). */
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
  const { app, fastPath, endStreams } = createApp(kv, { ...options, ...(tokens && { tokens }) });
  const hono = getRequestListener(app.fetch, { hostname: host, errorHandler: adapterError });
  // HTTP/1.1 requests meet the fast path first; HTTP/2 ones (see shareWithHttp2) go to Hono.
  const server = createServer((req, res) => {
    if (!fastPath(req, res)) void hono(req, res);
  });
  server.on("clientError", answerClientError);

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 8080, host, resolve);
    });
  } catch (cause) {
    if (typeof options.db !== "object") await kv.close();
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === "EADDRINUSE" ? "the port is already in use" : (cause as Error).message;
    throw new KvError(
      "UNAVAILABLE",
      `cannot listen on ${host}:${options.port ?? 8080}: ${reason}`,
      { cause },
    );
  }
  const http2 = shareWithHttp2(server, app.fetch, host);
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | null = null;
  return {
    url,
    kv,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        endStreams();
        http2.close();
        // Keep-alive connections become idle as their last responses finish; close them as they do.
        const sweep = setInterval(() => server.closeIdleConnections(), 25);
        server.closeIdleConnections();
        await stopped;
        clearInterval(sweep);
        await kv.close();
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
