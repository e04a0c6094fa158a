/**
 * `cellar/client`: the `Kv` API for browsers and other runtimes without Node's built-ins. It opens
 * a database in memory (`openKv()`) or on a Cellar server (`openKv("https://…", { token })`, over
 * `fetch`); SQLite and PostgreSQL need Node and stay in `cellar`. Nothing it imports uses
 * `node:*`, `Buffer` or `process`.
 */
export * from "./api.js";

import type { Kv } from "./core/kv.js";
import { memoryDriver } from "./drivers/memory/index.js";
import { fetchTransport } from "./drivers/remote/fetch.js";
import { fail } from "./errors.js";
import {
  assertPath,
  givenDriver,
  isServerUrl,
  localSettings,
  type OpenKvOptions as NodeOpenKvOptions,
  openLocal,
  openServer,
} from "./open-common.js";

/** The options of `cellar`'s `openKv`, less the SQLite ones. */
export type OpenKvOptions = Omit<NodeOpenKvOptions, "durability" | "crossProcessInterval">;

/**
 * Opens a database in this page's memory for no path or `":memory:"`, or on the Cellar server at
 * an `http://` or `https://` URL (the view of the namespace the server gives the token). The
 * server must allow the page's origin (`cellar serve --cors <origin>`) unless it serves the page.
 *
 * @example
 * import { openKv } from "cellar/client";
 * const kv = await openKv("https://kv.example.com", { token });
 * await kv.set(["greeting"], "hello");
 */
export async function openKv(path?: string, options: OpenKvOptions = {}): Promise<Kv> {
  assertPath(path);
  if (isServerUrl(path) && !options.driver) return openServer(path, options, fetchTransport);
  const { limits, driverOptions } = localSettings(options);
  const given = await givenDriver(options, driverOptions);
  if (!given && path !== undefined && path !== ":memory:") {
    fail(
      "INVALID_ARGUMENT",
      `cellar/client opens ":memory:" or an http(s):// server URL, got ${JSON.stringify(path)}; files and PostgreSQL need "cellar" in Node`,
    );
  }
  return openLocal(given ?? memoryDriver(driverOptions), limits, options);
}

export { createClientKv } from "./offline/browser.js";
export {
  ClientAtomic,
  ClientKv,
  type ClientWrite,
  type ClientWriteOutcome,
} from "./offline/client-kv.js";
export { indexedDbStorage } from "./offline/storage/indexeddb.js";
export { memoryStorage } from "./offline/storage/memory.js";
export type * from "./offline/types.js";
