import { Pool } from "undici";
import type { Transport, TransportFactory } from "./transport.js";

/**
 * A transport over an undici pool of keep-alive connections: Node's fastest HTTP client, and
 * `connections` requests in flight at once.
 *
 * @example
 * const driver = await connectRemote("http://127.0.0.1:8080", {}, undiciTransport);
 */
export const undiciTransport: TransportFactory = (url: URL, connections: number): Transport => {
  const pool = new Pool(url.origin, { connections, pipelining: 1 });
  const base = url.pathname.replace(/\/$/, "");
  return {
    async request({ method, path, headers, body, signal }) {
      const response = await pool.request({
        method,
        path: base + path,
        headers,
        ...(body !== undefined && { body }),
        ...(signal && { signal }),
      });
      return {
        status: response.statusCode,
        text: () => response.body.text(),
        chunks: () => response.body as AsyncIterable<Uint8Array>,
      };
    },
    close: () => pool.destroy(),
  };
};
