import type { Transport, TransportFactory, TransportResponse } from "./transport.js";

/**
 * A transport over the global `fetch`, for browsers and every runtime that has it. The runtime
 * pools connections itself, so `connections` is not used.
 *
 * @example
 * const driver = await connectRemote("https://kv.example.com", { token }, fetchTransport);
 */
export const fetchTransport: TransportFactory = (url: URL): Transport => {
  const base = url.href.replace(/\/$/, "");
  const open = new Set<AbortController>();
  return {
    async request({ method, path, headers, body, signal }): Promise<TransportResponse> {
      const controller = new AbortController();
      const abort = () => controller.abort(signal?.reason);
      signal?.addEventListener("abort", abort, { once: true });
      if (signal?.aborted) abort();
      open.add(controller);
      const done = () => {
        open.delete(controller);
        signal?.removeEventListener("abort", abort);
      };
      let response: Response;
      try {
        response = await fetch(base + path, {
          method,
          headers,
          ...(body !== undefined && { body }),
          signal: controller.signal,
        });
      } catch (error) {
        done();
        throw error;
      }
      return {
        status: response.status,
        text: () => response.text().finally(done),
        chunks: () => readChunks(response, done),
      };
    },
    async close() {
      for (const controller of open) controller.abort();
      open.clear();
    },
  };
};

async function* readChunks(response: Response, done: () => void): AsyncIterable<Uint8Array> {
  const reader = response.body?.getReader();
  try {
    if (!reader) return;
    for (;;) {
      const { done: finished, value } = await reader.read();
      if (finished) return;
      yield value;
    }
  } finally {
    reader?.releaseLock();
    done();
  }
}
