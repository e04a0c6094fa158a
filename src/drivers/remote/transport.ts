/**
 * How the remote driver sends HTTP requests: a keep-alive undici pool in Node (`undici.ts`),
 * `fetch` in browsers (`fetch.ts`). The driver speaks only this interface, so the browser entry
 * point never loads undici.
 */

export interface TransportRequest {
  readonly method: "GET" | "POST";
  /** Path and query, appended to the server's URL. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly signal?: AbortSignal;
}

export interface TransportResponse {
  readonly status: number;
  /** The whole body as text. */
  text(): Promise<string>;
  /** The body as it arrives, for streams. */
  chunks(): AsyncIterable<Uint8Array>;
}

export interface Transport {
  request(request: TransportRequest): Promise<TransportResponse>;
  /** Ends open connections; requests under way fail. */
  close(): Promise<void>;
}

/** Makes a transport to one server (`url` without a trailing slash), keeping `connections`. */
export type TransportFactory = (url: URL, connections: number) => Transport;
