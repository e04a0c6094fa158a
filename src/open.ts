import type { DriverOptions, KvDriver } from "./contract/index.js";
import { Database, type HistoryOptions } from "./core/database.js";
import { Kv } from "./core/kv.js";
import { assertPositiveInteger, type KvLimits, resolveLimits } from "./core/limits.js";
import { describe, fail } from "./errors.js";

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

export interface OpenKvOptions {
  /** Remote only: the bearer token sent to the server. */
  readonly token?: string;
  /** Remote only: which of the token's namespaces to open (default: the one the server picks). */
  readonly namespace?: string;
  /**
   * Use this driver instead of choosing one from the path: a driver, or a function that builds
   * one from the settings `openKv` resolved (history depth, value size limit, hash).
   */
  readonly driver?: KvDriver | ((options: DriverOptions) => KvDriver | Promise<KvDriver>);
  /** SQLite only: `"full"` (default) fsyncs every commit group; `"normal"` fsyncs at checkpoints. */
  readonly durability?: "full" | "normal";
  readonly limits?: Partial<KvLimits>;
  readonly history?: HistoryOptions;
  /** Milliseconds between expiry sweeps (default 1000); 0 turns the sweeper off. */
  readonly sweepInterval?: number;
  /** The clock every read and write uses, in epoch ms (default `Date.now`). */
  readonly clock?: () => number;
  /** Hash of stored values for `dataHash` (default SHA-256, hex). */
  readonly hash?: (bytes: Uint8Array) => string;
}

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
  if (path !== undefined && (typeof path !== "string" || path === "")) {
    fail("INVALID_ARGUMENT", `openKv takes a file path or ":memory:", got ${describe(path)}`);
  }
  if (path !== undefined && /^https?:\/\//i.test(path) && !options.driver)
    return openRemote(path, options);
  const limits = resolveLimits(options.limits);
  assertPositiveInteger("history.depth", options.history?.depth, 1000);
  const driverOptions = {
    maxValueSize: limits.maxValueSize,
    ...(options.history?.depth !== undefined && { historyDepth: options.history.depth }),
    ...(options.hash && { hash: options.hash }),
  };
  // Each driver is loaded when a path first asks for it, so `import "cellar"` loads no native
  // module, no PostgreSQL client and no HTTP client.
  const driver =
    typeof options.driver === "function"
      ? await options.driver(driverOptions)
      : (options.driver ??
        (path === undefined || path === ":memory:"
          ? (await import("./drivers/memory/index.js")).memoryDriver(driverOptions)
          : POSTGRES_URL.test(path)
            ? await (await import("./drivers/postgres/index.js")).postgresDriver(
                path,
                driverOptions,
              )
            : (await import("./drivers/sqlite/index.js")).sqliteDriver(path, {
                ...driverOptions,
                ...(options.durability && { durability: options.durability }),
              })));
  const db = new Database(driver, {
    limits,
    clock: options.clock ?? Date.now,
    ...(options.history && { history: options.history }),
    sweepInterval: options.sweepInterval ?? 1000,
  });
  return new Kv(db);
}

async function openRemote(url: string, options: OpenKvOptions): Promise<Kv> {
  const { remoteDriver } = await import("./drivers/remote/index.js");
  const driver = await remoteDriver(url, {
    ...(options.token !== undefined && { token: options.token }),
    ...(options.namespace !== undefined && { namespace: options.namespace }),
  });
  const db = new Database(driver, {
    // The server's limits, so client-side checks fail exactly where the server would.
    limits: resolveLimits({ ...driver.info.limits, ...options.limits }),
    clock: options.clock ?? Date.now,
    // The server sweeps; a client that asks for sweeps gets them run there.
    sweepInterval: options.sweepInterval ?? 0,
  });
  return new Kv(db, driver.info.namespace);
}
