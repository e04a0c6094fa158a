/**
 * The request an operation runs for, carried through async calls by `AsyncLocalStorage`, so an
 * operation's log line names the HTTP request that caused it. The server sets it; the logging
 * layer reads it as each operation starts.
 *
 * On Node 20 an `AsyncLocalStorage` in use costs every promise a little, so the server enters a
 * request context only while operation lines are logged (level `debug` or finer); reading the
 * context when nothing entered one costs nothing.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** What the logging layer knows of the request an operation runs for. */
export interface RequestContext {
  /** The request's `X-Request-Id`, or the id the server gave it. */
  readonly requestId: string;
}

const requests = new AsyncLocalStorage<RequestContext>();

/**
 * Runs `fn` (and everything it starts) as part of the request `context`.
 *
 * @example
 * runInRequest({ requestId: "7f3c…" }, () => kv.get(["a"])); // its log line carries requestId
 */
export function runInRequest<T>(context: RequestContext, fn: () => T): T {
  return requests.run(context, fn);
}

/** The request the current code runs for, if a server entered one. */
export function currentRequest(): RequestContext | undefined {
  return requests.getStore();
}
