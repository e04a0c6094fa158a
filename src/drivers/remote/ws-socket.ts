import WebSocket from "ws";
import type { SocketConnector } from "./socket.js";

/** How long the server may take to accept the upgrade before the driver stays on HTTP. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The driver socket's connections in Node: the `ws` package's client, without compression
 * (frames are small and latency counts) and without a limit on the answers' size, as HTTP has
 * none.
 *
 * @example
 * const driver = await connectRemote("http://127.0.0.1:8080", {}, undiciTransport, wsConnector);
 */
export const wsConnector: SocketConnector = (url, headers, events) => {
  const ws = new WebSocket(url, {
    headers,
    perMessageDeflate: false,
    maxPayload: 0,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  });
  let status: number | undefined;
  ws.on("unexpected-response", (_request, response) => {
    status = response.statusCode;
    response.resume();
    ws.terminate();
  });
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => {
    if (!isBinary) events.message(data.toString());
  });
  ws.on("close", (code, reason) =>
    events.closed({ code, reason: reason.toString(), ...(status !== undefined && { status }) }),
  );
  return {
    send: (text) => ws.send(text),
    close: () => ws.close(1000),
  };
};
