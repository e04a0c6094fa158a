import type { Kv } from "./core/kv.js";
import { fail } from "./errors.js";
import {
  assertPath,
  givenDriver,
  isServerUrl,
  localSettings,
  type OpenKvOptions,
  openLocal,
  openServer,
} from "./open-common.js";

export type { OpenKvOptions } from "./open-common.js";

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/**
 * Opens a database: in memory for no path or `":memory:"`; a Cellar server for an `http://` or
 * `https://` URL (the view of the namespace the server gives the token); PostgreSQL for a
 * `postgres://` or `postgresql://` URL (`?schema=name` picks the schema, default `public`);
 * otherwise the SQLite file at `path` (created with its folders if missing).
 *
 * @example
 * import { openKv } from "cellar";
 * const kv = await openKv("data/app.db");
 * await kv.set(["greeting"], "hello");
 */
export async function openKv(path?: string, options: OpenKvOptions = {}): Promise<Kv> {
  assertPath(path);
  if (isServerUrl(path) && !options.driver) {
    const { undiciTransport } = await import("./drivers/remote/undici.js");
    const { wsConnector } = await import("./drivers/remote/ws-socket.js");
    return openServer(path, options, undiciTransport, wsConnector);
  }
  // A URL of another scheme (a typo of postgres://, say) must not become a SQLite file of that name.
  const scheme = path === undefined ? null : /^([a-z][a-z0-9+.-]*):\/\//i.exec(path)?.[1];
  if (scheme && !POSTGRES_URL.test(path!) && !options.driver) {
    fail(
      "INVALID_ARGUMENT",
      `openKv cannot open ${JSON.stringify(path)}: it takes a file path, ":memory:", a postgres:// or postgresql:// URL, or a Cellar server's http(s):// URL, not a ${scheme}:// URL`,
    );
  }
  const { limits, driverOptions } = localSettings(options);
  // Each driver is loaded when a path first asks for it, so `import "cellar"` loads no native
  // module, no PostgreSQL client and no HTTP client.
  const driver =
    (await givenDriver(options, driverOptions)) ??
    (path === undefined || path === ":memory:"
      ? (await import("./drivers/memory/index.js")).memoryDriver(driverOptions)
      : POSTGRES_URL.test(path)
        ? await (await import("./drivers/postgres/index.js")).postgresDriver(path, driverOptions)
        : (await import("./drivers/sqlite/index.js")).sqliteDriver(path, {
            ...driverOptions,
            ...(options.durability && { durability: options.durability }),
            ...(options.crossProcessInterval !== undefined && {
              crossProcessInterval: options.crossProcessInterval,
            }),
          }));
  return openLocal(driver, limits, options);
}
