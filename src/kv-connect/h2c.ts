/**
 * HTTP/2 without TLS beside HTTP/1.1 on one port. Deno's KV Connect client speaks HTTP/2 with
 * prior knowledge (it sends the HTTP/2 connection preface at once and never falls back), while
 * browsers and curl speak HTTP/1.1. The HTTP/1.1 server keeps listening; each new connection is
 * held until its first bytes arrive, then handed to the HTTP/2 server if they are the preface
 * (`PRI * HTTP/2.0…`) and to the HTTP/1.1 server's own connection handling otherwise. Both
 * servers dispatch into the same fetch handler.
 */
import type { Server } from "node:http";
import { createServer as createHttp2Server, type Http2Session } from "node:http2";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { adapterError } from "../http/errors.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface SharedPort {
  /**
   * Graceful stop of the HTTP/2 side: every session finishes its open streams and closes, and
   * connections still silent are dropped. The HTTP/1.1 server is stopped by its owner.
   */
  close(): void;
}

type FetchHandler = Parameters<typeof getRequestListener>[0];

/** Whether `head` (the first bytes of a connection) is, or may still become, the HTTP/2 preface. */
function classify(head: Buffer): "http2" | "http1" | "undecided" {
  const n = Math.min(head.length, PREFACE.length);
  if (head.subarray(0, n).compare(PREFACE, 0, n) !== 0) return "http1";
  return head.length >= PREFACE.length ? "http2" : "undecided";
}

/**
 * Makes `server` (a listening or soon listening HTTP/1.1 server) also serve HTTP/2 cleartext
 * connections with `fetch`.
 */
export function shareWithHttp2(server: Server, fetch: FetchHandler, hostname?: string): SharedPort {
  const http2 = createHttp2Server(
    {},
    getRequestListener(fetch, {
      errorHandler: adapterError,
      ...(hostname !== undefined && { hostname }),
    }),
  );
  const sessions = new Set<Http2Session>();
  const waiting = new Set<Socket>();
  const http1 = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");

  http2.on("session", (session: Http2Session) => {
    sessions.add(session);
    // A broken session is closed by Node; the listener keeps its error from being thrown.
    session.on("error", () => {});
    session.once("close", () => sessions.delete(session));
  });

  server.on("connection", (socket: Socket) => {
    waiting.add(socket);
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), server.headersTimeout || 60_000);
    const hand = (to: "http1" | "http2") => {
      clearTimeout(timer);
      waiting.delete(socket);
      socket.off("readable", onReadable);
      socket.off("close", onClose);
      socket.unshift(head);
      if (to === "http2") http2.emit("connection", socket);
      else for (const listener of http1) listener.call(server, socket);
    };
    const onReadable = () => {
      for (
        let chunk = socket.read() as Buffer | null;
        chunk !== null;
        chunk = socket.read() as Buffer | null
      ) {
        head = Buffer.concat([head, chunk]);
      }
      const kind = classify(head);
      if (kind !== "undecided") hand(kind);
    };
    const onClose = () => {
      clearTimeout(timer);
      waiting.delete(socket);
    };
    socket.on("readable", onReadable);
    socket.once("close", onClose);
  });

  return {
    close() {
      for (const session of sessions) session.close();
      for (const socket of waiting) socket.destroy();
      waiting.clear();
    },
  };
}
