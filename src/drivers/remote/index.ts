/**
 * The remote driver for Node: the driver of `driver.ts` over the server's driver socket (`ws`),
 * and a keep-alive undici pool for HTTP.
 * Browsers reach it through `cellar/client`, which uses `fetch` instead.
 */
import { connectRemote, type RemoteDriver, type RemoteDriverOptions } from "./driver.js";
import { undiciTransport } from "./undici.js";
import { wsConnector } from "./ws-socket.js";

export { connectRemote, type RemoteDriver, type RemoteDriverOptions } from "./driver.js";
export { fetchTransport } from "./fetch.js";
export type { SocketConnection, SocketConnector, SocketEvents } from "./socket.js";
export type { Transport, TransportFactory, TransportResponse } from "./transport.js";
export { undiciTransport } from "./undici.js";
export { wsConnector } from "./ws-socket.js";

/**
 * Connects to a Cellar server and returns its driver, after asking it for the client's scope.
 *
 * @example
 * const kv = await openKv("http://127.0.0.1:8080", { token: process.env.CELLAR_TOKEN });
 */
export function remoteDriver(
  url: string,
  options: RemoteDriverOptions = {},
): Promise<RemoteDriver> {
  return connectRemote(url, options, undiciTransport, wsConnector);
}
