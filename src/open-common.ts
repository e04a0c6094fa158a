/**
 * What `openKv` does once it knows its driver, shared by the Node entry point (`open.ts`) and the
 * browser one (`client.ts`): option checks, driver settings, and opening a remote server over a
 * given transport.
 */
import type { DriverOptions, KvDriver } from "./contract/index.js";
import { Database, type HistoryOptions } from "./core/database.js";
import { Kv } from "./core/kv.js";
import {
  assertOptions,
  assertPositiveInteger,
  type KvLimits,
  resolveLimits,
} from "./core/limits.js";
import type { SocketConnector } from "./drivers/remote/socket.js";
import type { TransportFactory } from "./drivers/remote/transport.js";
import { describe, fail } from "./errors.js";

export interface OpenKvOptions {
  /** Remote only: the bearer token sent to the server. */
  readonly token?: string;
  /** Remote only: which of the token's namespaces to open (default: the one the server picks). */
  readonly namespace?: string;
  /**
   * Remote only: send calls over the server's driver socket, one WebSocket, while it is up
   * (default true in Node; `cellar/client` always uses HTTP). `false`: HTTP only.
   */
  readonly socket?: boolean;
  /**
   * Use this driver instead of choosing one from the path: a driver, or a function that builds
   * one from the settings `openKv` resolved (history depth, value size limit, hash).
   */
  readonly driver?: KvDriver | ((options: DriverOptions) => KvDriver | Promise<KvDriver>);
  /** SQLite only: `"full"` (default) fsyncs every commit group; `"normal"` fsyncs at checkpoints. */
  readonly durability?: "full" | "normal";
  /**
   * SQLite only: how often, in ms, a process with watchers or subscribers looks for other
   * processes' commits to the file (default 20): the delay of their events here.
   */
  readonly crossProcessInterval?: number;
  readonly limits?: Partial<KvLimits>;
  readonly history?: HistoryOptions;
  /**
   * The window of the change log that events resume from: the last `size` commits (default
   * 10,000), extended to the last `age` milliseconds when given. Older resume points get
   * `COMPACTED`.
   */
  readonly changeLog?: { readonly size?: number; readonly age?: number };
  /** Milliseconds between expiry sweeps (default 1000); 0 turns the sweeper off. */
  readonly sweepInterval?: number;
  /** The clock every read and write uses, in epoch ms (default `Date.now`). */
  readonly clock?: () => number;
  /** Hash of stored values for `dataHash` (default SHA-256, hex). */
  readonly hash?: (bytes: Uint8Array) => string;
}

/** Throws `INVALID_ARGUMENT` unless `path` is absent or a non-empty string. */
export function assertPath(path: unknown): asserts path is string | undefined {
  if (path !== undefined && (typeof path !== "string" || path === "")) {
    fail("INVALID_ARGUMENT", `openKv takes a file path or ":memory:", got ${describe(path)}`);
  }
}

/** True for an `http://` or `https://` URL: a Cellar server. */
export function isServerUrl(path: string | undefined): path is string {
  return path !== undefined && /^https?:\/\//i.test(path);
}

/** The limits `options` ask for, and the settings a local driver is built with. */
export function localSettings(options: OpenKvOptions): {
  limits: KvLimits;
  driverOptions: DriverOptions;
} {
  const limits = resolveLimits(options.limits);
  assertPositiveInteger("history.depth", options.history?.depth, 1000);
  assertOptions("changeLog", options.changeLog, ["size", "age"]);
  assertPositiveInteger("crossProcessInterval", options.crossProcessInterval, 60_000);
  assertPositiveInteger("changeLog.size", options.changeLog?.size);
  assertPositiveInteger("changeLog.age", options.changeLog?.age);
  const driverOptions = {
    maxValueSize: limits.maxValueSize,
    ...(options.history?.depth !== undefined && { historyDepth: options.history.depth }),
    ...(options.changeLog?.size !== undefined && { changeLogSize: options.changeLog.size }),
    ...(options.changeLog?.age !== undefined && { changeLogAge: options.changeLog.age }),
    ...(options.hash && { hash: options.hash }),
  };
  return { limits, driverOptions };
}

/** The driver `options.driver` names, when it names one. */
export async function givenDriver(
  options: OpenKvOptions,
  driverOptions: DriverOptions,
): Promise<KvDriver | undefined> {
  return typeof options.driver === "function"
    ? await options.driver(driverOptions)
    : options.driver;
}

/** A `Kv` over a local driver: this process sweeps expired entries. */
export function openLocal(driver: KvDriver, limits: KvLimits, options: OpenKvOptions): Kv {
  const db = new Database(driver, {
    limits,
    clock: options.clock ?? Date.now,
    ...(options.history && { history: options.history }),
    sweepInterval: options.sweepInterval ?? 1000,
  });
  return new Kv(db);
}

/** A `Kv` on a Cellar server reached over `transport`, and `connector`'s driver socket if given. */
export async function openServer(
  url: string,
  options: OpenKvOptions,
  transport: TransportFactory,
  connector?: SocketConnector,
): Promise<Kv> {
  // Loaded on first use, like every driver: opening a local database loads no HTTP client.
  const { connectRemote } = await import("./drivers/remote/driver.js");
  const driver = await connectRemote(
    url,
    {
      ...(options.token !== undefined && { token: options.token }),
      ...(options.namespace !== undefined && { namespace: options.namespace }),
      ...(options.socket !== undefined && { socket: options.socket }),
    },
    transport,
    connector,
  );
  const db = new Database(driver, {
    // The server's limits, so client-side checks fail exactly where the server would.
    limits: resolveLimits({ ...driver.info.limits, ...options.limits }),
    clock: options.clock ?? Date.now,
    // The server sweeps; a client that asks for sweeps gets them run there.
    sweepInterval: options.sweepInterval ?? 0,
  });
  return new Kv(db, driver.info.namespace);
}
