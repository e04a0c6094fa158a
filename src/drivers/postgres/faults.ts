/**
 * What a lost PostgreSQL connection means for a statement in flight, and the `KvError` to
 * report. A server restart, a failover or `pg_terminate_backend` kills connections; the pool
 * opens new ones, and whether the work may simply run again depends on what is known of it:
 * a failure the server reported for a statement (as a terminated backend reports FATAL 57P01
 * before it closes) means the transaction did not commit; a connection that just dropped after
 * a COMMIT was sent leaves its outcome unknown.
 */
import pg from "pg";
import { KvError } from "../../errors.js";

/** How long work is retried on new connections while the server is unreachable, in ms. */
export const RECONNECT_WINDOW = 5000;

/** Whether `error` is the connection's failure, not a statement's. */
export function connectionLost(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) {
    const code = error.code ?? "";
    // 57P01-57P03: the server is shutting down or terminated this backend; 08: connection exception.
    return code.startsWith("57P") || code.startsWith("08");
  }
  if (!(error instanceof Error) || error instanceof KvError) return false;
  // A socket's errno (ECONNRESET, ECONNREFUSED, EPIPE…), or node-postgres's own words for a
  // connection that ended or a client already closed.
  const errno = (error as NodeJS.ErrnoException).code;
  return (
    (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) ||
    /connection|not queryable|timeout/i.test(error.message)
  );
}

/**
 * Whether a transaction that failed with `error` surely did not commit: the server answered
 * one of its statements, COMMIT included, with an error; or node-postgres refused to send the
 * statement on a client it already knew broken, so no COMMIT was sent. Any other loss of the
 * connection may have come after the server committed.
 */
export function surelyAborted(error: unknown): boolean {
  return (
    error instanceof pg.DatabaseError ||
    (error instanceof Error && /is not queryable/.test(error.message))
  );
}

/** Backoff before attempt `attempt` (1-based) on a new connection: 25 ms doubling up to 500 ms. */
export function reconnectDelay(attempt: number): Promise<void> {
  const ms = Math.min(500, 25 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `UNAVAILABLE` for work that lost its connection and could not run again: `unsure` when it
 * was a commit whose outcome is unknown, so the caller reads before writing again.
 */
export function unavailable(cause: unknown, unsure: boolean): KvError {
  const detail = (cause as Error).message;
  return new KvError(
    "UNAVAILABLE",
    unsure
      ? `the connection to PostgreSQL was lost before the commit was confirmed (${detail}): it may or may not have been applied`
      : `PostgreSQL is unreachable (${detail}): nothing was changed`,
    { cause },
  );
}
