/**
 * The mirror's connections to PostgreSQL: node-postgres loaded on first use (`import "cellar"`
 * loads no PostgreSQL client), a small pool for statements and, in both directions, one client
 * that LISTENs. Every connection sets `cellar.origin = 'cellar'` at startup: the triggers that
 * capture changes made in the table skip what the mirror itself writes.
 */
import type pg from "pg";
import { KvError } from "../errors.js";

export type Pg = typeof pg;

/** node-postgres, loaded once. */
export async function loadPg(): Promise<Pg> {
  return (await import("pg")).default;
}

/** The application name the mirror's sessions show in `pg_stat_activity`, unless the URL names one. */
const APPLICATION_NAME = "cellar-mirror";

/** The connection options of every mirror session. */
export function connectionConfig(connectionString: string): pg.ClientConfig {
  const url = new URL(connectionString);
  const given = url.searchParams.get("options");
  url.searchParams.set("options", `${given ? `${given} ` : ""}-c cellar.origin=cellar`);
  if (!url.searchParams.has("application_name"))
    url.searchParams.set("application_name", APPLICATION_NAME);
  return { connectionString: url.toString(), connectionTimeoutMillis: 10_000 };
}

/** A pool whose broken connections never crash the process: they are dropped and replaced. */
export function openPool(driver: Pg, connectionString: string): pg.Pool {
  const pool = new driver.Pool({ ...connectionConfig(connectionString), max: 2 });
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

/**
 * Whether `error` says PostgreSQL could not be reached or dropped the connection (worth retrying
 * as it is), rather than that it refused what was sent.
 */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string") {
    // 08: connection exception; 57P01–57P03: shutting down, terminated, cannot connect now;
    // 53: insufficient resources (too many connections, out of memory or disk).
    if (/^(08|53|57P0[1-3])/.test(code)) return true;
    if (/^E[A-Z]+$/.test(code)) return true; // a socket's errno: ECONNREFUSED, ECONNRESET…
  }
  const message = (error as Error)?.message ?? "";
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect/i.test(
    message,
  );
}

/**
 * Whether PostgreSQL refused the data of a statement (a value out of range, a malformed uuid, a
 * constraint): the batch is retried row by row, and the rows it refuses are skipped.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^(22|23|54)/.test(code);
}

/** `error` as a `KvError`: `UNAVAILABLE` for a connection failure, else `STORAGE_ERROR`. */
export function asKvError(error: unknown, what: string): KvError {
  if (error instanceof KvError) return error;
  const message = (error as Error)?.message ?? String(error);
  return new KvError(
    isConnectionError(error) ? "UNAVAILABLE" : "STORAGE_ERROR",
    `${what}: ${message}`,
    { cause: error },
  );
}

/** The wait before retry `attempt` (0-based): doubling from `initialMs`, at most `maxMs`. */
export function backoff(attempt: number, retry: { initialMs: number; maxMs: number }): number {
  return Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(attempt, 30));
}
