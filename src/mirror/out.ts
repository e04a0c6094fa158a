/**
 * The way out: the change feed under the prefix, written to the table in batches.
 *
 * A subscription resumes after the stored checkpoint (`kv.subscribe([...prefix, REST], …, {
 * since })`) and fills a buffer; a writer takes whole commits from it, at most `batchSize` rows,
 * and writes them with the new checkpoint in one statement, so a crash leaves rows and
 * checkpoint in step: the next start replays from there, and replaying is harmless (a row is
 * only replaced by a later commit's). A reader that falls too far behind drops its subscription
 * and resumes from the log once the buffer is written; PostgreSQL failing drops the buffer, and
 * the next attempt resumes from the stored checkpoint. A checkpoint the log no longer holds
 * (`COMPACTED`) or that the database never reached (another or a restored database) copies the
 * prefix whole.
 */
import { type KvEvent, REST } from "../core/events/index.js";
import type { KvEntry } from "../core/types.js";
import type { KvError } from "../errors.js";
import { asKvError, backoff, isDataError } from "./connection.js";
import type { RowOf } from "./layout.js";
import type { Runtime } from "./runtime.js";
import { CHANNEL } from "./setup.js";
import type { ResyncReason } from "./status.js";

/** Quiet after which the subscription reports its position (a progress marker), in ms. */
const PROGRESS_INTERVAL = 200;
/** How often a checkpoint moved only by progress markers is stored, at most, in ms. */
const PERSIST_INTERVAL = 1000;

interface Pending {
  readonly event: KvEvent;
  readonly at: number;
}

interface Waiter {
  readonly target: string;
  /** Progress markers seen when the wait began: a later one with nothing pending ends it too. */
  readonly markers: number;
  readonly resolve: () => void;
}

export class OutDirection {
  /** Every change up to this versionstamp is in the table; `null` until known. */
  position: string | null = null;
  #pending: Pending[] = [];
  #lastAccepted = "";
  #overflowed = false;
  #failure: KvError | null = null;
  #progress = "";
  #markers = 0;
  #persisted: string | null = null;
  #persistedAt = 0;
  #unsubscribe: (() => void) | null = null;
  #wake: (() => void) | null = null;
  #waiters: Waiter[] = [];
  #started!: () => void;
  /** Resolves once the table holds the prefix (copied whole, or resumed from a checkpoint). */
  readonly started = new Promise<void>((resolve) => {
    this.#started = resolve;
  });

  constructor(
    private readonly runtime: Runtime,
    /** The inbox id the way in has applied, or is applying: keys with later changes are left. */
    private readonly inboxApplied: (() => number) | null,
  ) {}

  /** Runs until the mirror closes, retrying with backoff after each failure. */
  async run(): Promise<void> {
    const { runtime } = this;
    let attempt = 0;
    while (!runtime.closed) {
      try {
        const state = await runtime.ready();
        let since = await this.#storedCheckpoint();
        if (since === null) since = await this.#resync(state.fresh ?? "first start");
        else if (since > (await runtime.kv.currentVersionstamp()))
          since = await this.#resync("database behind checkpoint");
        runtime.status.set("state", "running");
        this.#started();
        attempt = 0;
        for (;;) {
          const end = await this.#follow(since);
          if (end === "closed") return;
          since = await this.#resync(end);
          runtime.status.set("state", "running");
        }
      } catch (error) {
        if (runtime.closed || runtime.databaseClosed) return;
        // Set up again before the next attempt: the table may have been dropped or altered.
        runtime.invalidate();
        this.#fail(error);
        await runtime.sleep(backoff(attempt++, runtime.config.retry));
      }
    }
  }

  #fail(error: unknown): void {
    const { runtime } = this;
    runtime.status.failed(asKvError(error, "PostgreSQL"));
    runtime.status.set("state", "retrying");
  }

  /** Wakes the writer: a change arrived, or the mirror is closing. */
  wake(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Resolves once every change up to `target` is in the table. */
  until(target: string): Promise<void> {
    if (this.position !== null && this.position >= target) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ target, markers: this.#markers, resolve });
    });
  }

  #settle(byMarker: boolean): void {
    const position = this.position;
    this.#waiters = this.#waiters.filter((waiter) => {
      const done =
        (position !== null && position >= waiter.target) ||
        (byMarker && this.#markers > waiter.markers);
      if (done) waiter.resolve();
      return !done;
    });
  }

  async #storedCheckpoint(): Promise<string | null> {
    const { runtime } = this;
    const { rows } = await runtime.pool.query(
      `SELECT out_versionstamp FROM ${runtime.layout.state} WHERE table_name = $1`,
      [runtime.config.table],
    );
    const found = (rows[0]?.out_versionstamp as string | null | undefined) ?? null;
    this.position = found;
    this.#persisted = found;
    if (found) runtime.status.set("checkpoint", found);
    return found;
  }

  #subscribe(since: string): void {
    const { kv, config, status } = this.runtime;
    this.#overflowed = false;
    this.#lastAccepted = "";
    const maxPending = config.batchSize * 10;
    this.#unsubscribe = kv.subscribe(
      [...config.prefix, REST],
      (event) => {
        if (this.#overflowed) return;
        if (this.#pending.length >= maxPending && event.versionstamp !== this.#lastAccepted) {
          // Whole commits only: the rest is read from the log once the buffer is written.
          this.#overflowed = true;
          this.#unsubscribe?.();
          this.#unsubscribe = null;
          this.wake();
          return;
        }
        const at = Date.now();
        // Changes dropped with a failed write keep their age: they are still not in the table.
        status.oldestPendingAt ??= at;
        this.#pending.push({ event, at });
        this.#lastAccepted = event.versionstamp;
        status.seen(event.versionstamp);
        this.wake();
      },
      {
        since,
        progressInterval: PROGRESS_INTERVAL,
        onProgress: (versionstamp) => {
          this.#progress = versionstamp;
          this.#markers += 1;
          status.seen(versionstamp);
          this.wake();
        },
        onError: (error) => {
          this.#failure = error;
          this.wake();
        },
      },
    );
  }

  #stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#pending = [];
    this.#failure = null;
  }

  /** Follows the change feed after `since` until the mirror closes or the feed cannot go on. */
  async #follow(since: string): Promise<"closed" | ResyncReason> {
    const { runtime } = this;
    this.#subscribe(since);
    try {
      for (;;) {
        if (runtime.closed) return "closed";
        const failure = this.#failure;
        if (failure) {
          if (failure.code === "COMPACTED") return "COMPACTED";
          if (failure.code === "INVALID_VERSIONSTAMP") return "database behind checkpoint";
          if (failure.code === "DATABASE_CLOSED") return "closed";
          throw failure;
        }
        if (this.#pending.length > 0) {
          await this.#writeBatch();
        } else if (this.#overflowed) {
          this.#subscribe(this.position!);
        } else if (this.#progress !== "" && this.#progress > (this.position ?? "")) {
          this.position = this.#progress;
          runtime.status.set("checkpoint", this.position);
          this.#settle(true);
          if (Date.now() - this.#persistedAt >= PERSIST_INTERVAL) await this.#persist();
        } else {
          this.#settle(true);
          if (
            this.position !== this.#persisted &&
            Date.now() - this.#persistedAt >= PERSIST_INTERVAL
          )
            await this.#persist();
          else await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      }
    } finally {
      this.#stop();
    }
  }

  /** Stores a checkpoint moved by progress markers alone, so a restart replays less. */
  async #persist(): Promise<void> {
    const { runtime } = this;
    const position = this.position;
    await runtime.pool.query(
      `UPDATE ${runtime.layout.state} SET out_versionstamp = $2, updated_at = now() WHERE table_name = $1`,
      [runtime.config.table, position],
    );
    this.#persisted = position;
    this.#persistedAt = Date.now();
    runtime.status.set("connected", true);
  }

  /** Writes the oldest whole commits of the buffer, at most `batchSize` rows unless one commit has more. */
  async #writeBatch(): Promise<void> {
    const { runtime } = this;
    const pending = this.#pending;
    let n = Math.min(runtime.config.batchSize, pending.length);
    while (
      n < pending.length &&
      pending[n]!.event.versionstamp === pending[n - 1]!.event.versionstamp
    )
      n++;
    const checkpoint = pending[n - 1]!.event.versionstamp;
    const { rows, deletes } = this.#changes(pending.slice(0, n).map((p) => p.event));
    const written = await this.#write(rows, deletes, checkpoint);
    pending.splice(0, n);
    runtime.status.oldestPendingAt = pending[0]?.at ?? null;
    this.#recordWrite(written, checkpoint);
  }

  #recordWrite(rows: number, checkpoint: string): void {
    const { runtime } = this;
    this.position = checkpoint;
    this.#persisted = checkpoint;
    this.#persistedAt = Date.now();
    runtime.status.wrote(rows);
    runtime.status.set("checkpoint", checkpoint);
    runtime.config.onWrite?.({ direction: "out", rows, checkpoint });
    this.#settle(false);
  }

  /** The rows to upsert and the keys to delete: each key's last change in these events. */
  #changes(events: readonly KvEvent[]): {
    rows: RowOf[];
    deletes: { key: string; versionstamp: string }[];
  } {
    const { layout, status } = this.runtime;
    const last = new Map<string, KvEvent>();
    for (const event of events) {
      const key = layout.keyOf(event.key);
      last.delete(key);
      last.set(key, event);
    }
    const rows: RowOf[] = [];
    const deletes: { key: string; versionstamp: string }[] = [];
    for (const [key, event] of last) {
      if (event.entry) {
        const row = layout.rowOf(event.entry);
        for (const problem of row.problems) status.skip(`${key}: ${problem}`);
        rows.push(row);
      } else deletes.push({ key, versionstamp: event.versionstamp });
    }
    return { rows, deletes };
  }

  /**
   * Writes rows and deletes with the checkpoint in one statement; when PostgreSQL refuses the
   * data of some row, writes them one by one instead and skips the rows it refuses.
   */
  async #write(
    rows: readonly RowOf[],
    deletes: readonly { key: string; versionstamp: string }[],
    checkpoint: string | null,
  ): Promise<number> {
    const { runtime } = this;
    const { layout } = runtime;
    const inbox = this.inboxApplied ? { applied: this.inboxApplied() } : null;
    try {
      const result = await runtime.pool.query({
        ...layout.writeStatement({ inbox: inbox !== null, force: false }),
        values: layout.writeParameters(rows, deletes, checkpoint, inbox),
      });
      const counts = result.rows[0] as { upserted: number; deleted: number };
      return counts.upserted + counts.deleted;
    } catch (error) {
      const count = rows.length + deletes.length;
      if (!isDataError(error) || count === 0) throw error;
      let written = 0;
      if (count === 1) {
        for (const { key } of [...rows, ...deletes])
          runtime.status.skip(`${key}: ${(error as Error).message}`);
      } else {
        for (const row of rows) written += await this.#write([row], [], null);
        for (const d of deletes) written += await this.#write([], [d], null);
      }
      if (checkpoint !== null) await this.#write([], [], checkpoint);
      return written;
    }
  }

  /**
   * Copies the prefix whole: upserts every live entry, then deletes the rows whose key is gone
   * (or, the first time a mirror in both directions meets a table, hands them to the way in, so
   * rows that were there before Cellar reach it), and stores the versionstamp read before the
   * copy as the checkpoint, all in one transaction.
   */
  async #resync(reason: ResyncReason): Promise<string> {
    const { runtime } = this;
    const { kv, config, layout, status } = runtime;
    status.set("state", "resyncing");
    status.oldestPendingAt = Date.now();
    const since = await kv.currentVersionstamp();
    status.seen(since);
    const both = this.inboxApplied !== null;
    const client = await runtime.pool.connect();
    let broken = false;
    let copied = 0;
    try {
      await client.query("BEGIN");
      await client.query(
        "CREATE TEMP TABLE cellar_mirror_seen (key text PRIMARY KEY) ON COMMIT DROP",
      );
      const statement = layout.writeStatement({ inbox: both, force: true });
      /** Writes rows under a savepoint; rows PostgreSQL refuses are skipped one by one. */
      const copy = async (rows: RowOf[]): Promise<void> => {
        await client.query("SAVEPOINT cellar_mirror_copy");
        try {
          const inbox = this.inboxApplied ? { applied: this.inboxApplied() } : null;
          await client.query({
            ...statement,
            values: layout.writeParameters(rows, [], null, inbox),
          });
          await client.query("INSERT INTO cellar_mirror_seen SELECT unnest($1::text[])", [
            rows.map((row) => row.key),
          ]);
          await client.query("RELEASE SAVEPOINT cellar_mirror_copy");
          copied += rows.length;
        } catch (error) {
          if (!isDataError(error)) throw error;
          await client.query("ROLLBACK TO SAVEPOINT cellar_mirror_copy");
          if (rows.length === 1) status.skip(`${rows[0]!.key}: ${(error as Error).message}`);
          else for (const row of rows) await copy([row]);
        }
      };
      const flush = async (entries: KvEntry[]) => {
        if (entries.length === 0) return;
        const rows = entries.map((entry) => layout.rowOf(entry));
        for (const row of rows)
          for (const problem of row.problems) status.skip(`${row.key}: ${problem}`);
        await copy(rows);
        entries.length = 0;
      };
      const batch: KvEntry[] = [];
      if (config.prefix.length > 0) {
        const own = await kv.get(config.prefix, { metadata: true });
        if (own.versionstamp !== null) batch.push(own as KvEntry);
      }
      for await (const entry of kv.list(
        { prefix: config.prefix },
        { metadata: true, batchSize: 500 },
      )) {
        batch.push(entry);
        if (batch.length >= config.batchSize) await flush(batch);
      }
      await flush(batch);
      const gone = `NOT EXISTS (SELECT 1 FROM cellar_mirror_seen s WHERE s.key = t.key)`;
      if (both && reason === "first start") {
        await client.query(
          `INSERT INTO ${layout.inbox} (source, key) SELECT $1, t.key FROM ${layout.table} t WHERE ${gone}`,
          [config.table],
        );
        await client.query("SELECT pg_notify($1, $2)", [
          CHANNEL,
          `${config.schema}.${config.table}`,
        ]);
      } else {
        const pending = both
          ? ` AND NOT EXISTS (SELECT 1 FROM ${layout.inbox} i WHERE i.source = $1 AND i.key = t.key AND i.id > $2)`
          : "";
        await client.query(
          `DELETE FROM ${layout.table} t WHERE ${gone}${pending}`,
          both ? [config.table, this.inboxApplied!()] : [],
        );
      }
      await client.query(
        `UPDATE ${layout.state} SET out_versionstamp = $2, resyncs = resyncs + 1, updated_at = now() WHERE table_name = $1`,
        [config.table, since],
      );
      await client.query("COMMIT");
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
    status.oldestPendingAt = null;
    status.resynced(reason, copied);
    this.#recordWrite(copied, since);
    return since;
  }
}
