/**
 * Mirrors: the entries under a prefix kept in a PostgreSQL table, one row per key, fed from the
 * change feed in the background; with `direction: "both"`, changes made in that table by other
 * services flow back into Cellar as ordinary commits. Node only: node-postgres is loaded when the
 * first mirror starts. README "Mirrors to and from PostgreSQL" describes the guarantees.
 */
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import { KvError } from "../errors.js";
import { InDirection } from "./in.js";
import { type MirrorOptions, mirrorConfig } from "./options.js";
import { OutDirection } from "./out.js";
import { registerMirror } from "./registry.js";
import { Runtime } from "./runtime.js";
import { type MirrorStatus, StatusBoard } from "./status.js";

export {
  COLUMN_TYPES,
  type MirrorColumn,
  type MirrorColumnType,
  type MirrorDirection,
  type MirrorLogger,
  type MirrorOptions,
  type MirrorWrite,
  mirrorConfig,
} from "./options.js";
export { type MirrorReport, mirrorStatuses } from "./registry.js";
export type { MirrorStatus, ResyncReason } from "./status.js";

/** A running mirror. */
export interface Mirror {
  /** `schema.table`. */
  readonly table: string;
  /** Position, lag, rows written, errors (see {@link MirrorStatus}). */
  status(): MirrorStatus;
  /**
   * Resolves once every change committed before the call is in the table (and, both ways, every
   * change the table's inbox held is in Cellar and written back); fails with `UNAVAILABLE` after
   * `timeoutMs` (default 30 s), naming the last error.
   */
  flush(options?: { readonly timeoutMs?: number }): Promise<void>;
  /** Stops following; the checkpoint stays where the last write left it. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts mirroring the entries of `kv` (its namespace) under `options.prefix` into a PostgreSQL
 * table, and back when `direction` is `"both"`. Options are checked at once (`INVALID_ARGUMENT`);
 * connecting happens in the background, retried with backoff while PostgreSQL cannot be reached,
 * as every later failure is: `status()` tells how it goes. The mirror closes with the database.
 *
 * @example
 * const users = mirror(kv, {
 *   prefix: ["users"],
 *   to: "postgres://app@db.internal:5432/app",
 *   table: "users",
 *   payload: { name: { type: "text" }, langs: (entry) => entry.value.langs },
 * });
 * await kv.set(["users", "ada"], { name: "Ada", langs: ["en"] });
 * await users.flush(); // SELECT key, name, value FROM users
 * console.log(users.status().lag);
 */
export function mirror<T = unknown>(kv: Kv, options: MirrorOptions<T>): Mirror {
  const config = mirrorConfig(options as MirrorOptions);
  const { core } = coreOf(kv);
  core.assertOpen();
  const table = `${config.schema}.${config.table}`;
  const status = new StatusBoard(table, config.direction, config.logger);
  const runtime = new Runtime(kv, config, status);
  const inbound = config.direction === "both" ? new InDirection(runtime) : null;
  const out = new OutDirection(runtime, inbound ? () => inbound.applying : null);
  let closing: Promise<void> | null = null;
  // A direction stops by itself only when the database closed: then the mirror closes too.
  const stopped = () => {
    if (core.closed) void close();
  };
  const running = Promise.all([out.run().then(stopped), inbound?.run().then(stopped)]);
  const unregister = registerMirror(kv, { status: () => status.read() });

  function close(): Promise<void> {
    closing ??= (async () => {
      runtime.close();
      out.wake();
      inbound?.wake();
      await running;
      unregister();
      status.set("state", "closed");
      await runtime.end();
    })();
    return closing;
  }

  async function flush({ timeoutMs = 30_000 }: { readonly timeoutMs?: number } = {}) {
    if (runtime.closed) throw new KvError("UNAVAILABLE", `mirror ${table} is closed`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const last = status.read().lastError;
        reject(
          new KvError(
            "UNAVAILABLE",
            `mirror ${table} did not catch up within ${timeoutMs} ms${last ? `; last error: ${last.message}` : ""}`,
          ),
        );
      }, timeoutMs);
    });
    try {
      await Promise.race([
        (async () => {
          await out.started;
          if (inbound) await inbound.until(Date.now() + timeoutMs);
          await out.until(await kv.currentVersionstamp());
        })(),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    table,
    status: () => status.read(),
    flush,
    close,
    [Symbol.asyncDispose]: close,
  };
}
