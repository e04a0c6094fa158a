/**
 * Group commit for the PostgreSQL driver, and the transaction plumbing queue operations share.
 *
 * Atomic writes (and expiry sweeps) that arrive in the same turn of the event loop are applied
 * in one transaction, each under its own version: one round trip takes the commit lock and
 * reads every key they touch, one more stores the result (one statement) and commits, so a
 * burst of N writes costs two round trips and one WAL flush instead of N. A write whose check
 * fails or whose mutation throws a `KvError` changes nothing and the rest of its group commits;
 * a write the database refuses fails alone too. Groups of one process run one at a time; writes
 * arriving meanwhile form the next group.
 *
 * When the feed's cache knows every key of a group, the group skips the reading round trip:
 * its statement runs alone, as its own transaction, and its guard aborts it if any commit
 * happened since the cached state, in which case the group runs again the long way.
 */
import pg from "pg";
import type { StoredEntry } from "../../contract/apply.js";
import type { AtomicWrite, ChangeEvent, CommitResult } from "../../contract/index.js";
import { KvError } from "../../errors.js";
import { GroupCommit, type Outcome } from "../shared/group-commit.js";
import {
  type BatchOptions,
  CommitBatch,
  type CommitPlan,
  keysOf,
  type RecalledRow,
  uniqueKeys,
} from "./commit.js";
import type { CommitSql } from "./commit-sql.js";
import {
  connectionLost,
  RECONNECT_WINDOW,
  reconnectDelay,
  surelyAborted,
  unavailable,
} from "./faults.js";
import { type ChangeFeed, changesOf } from "./feed.js";
import { binaryArray, isRetryable, type KvRow, pipeline } from "./rows.js";

/** Transactions that hit a deadlock or serialization failure run again, up to this many times. */
const MAX_ATTEMPTS = 10;
/** Jobs per group: bounds the size of one transaction's statements. */
const MAX_GROUP = 1000;
/** After a guard fails this many times in a row, groups skip the cache for a while... */
const GUARD_FAILURES = 2;
/** ...this many groups, since other processes are committing too often for it to pay. */
const COOL_DOWN = 32;

/** The guard of a batch built on known state found a commit it did not see. */
class StaleState extends Error {}

type Job =
  | { readonly kind: "write"; readonly write: AtomicWrite }
  | { readonly kind: "expire"; readonly now: number; readonly limit: number };

export interface CommitterOptions {
  readonly pool: pg.Pool;
  readonly sql: CommitSql;
  readonly feed: ChangeFeed;
  readonly channel: string;
  readonly batch: BatchOptions;
  readonly logSize: number;
  /** Milliseconds a commit stays in the change log however many follow it. */
  readonly logAge: number;
}

/** A batch opened under the commit lock, with the other processes' commits it must report first. */
export interface OpenBatch {
  readonly batch: CommitBatch;
  readonly extra: pg.QueryResult[];
  readonly foreign: ChangeEvent[];
  /** Built on cached state: its statement runs alone, and its guard fails if a commit came since. */
  readonly guarded?: boolean;
}

export class Committer {
  readonly #options: CommitterOptions;
  readonly #group = new GroupCommit<Job>((jobs) => this.#flush(jobs), MAX_GROUP);
  #prunedAt = 0;
  #guardFailures = 0;
  #coolDown = 0;

  constructor(options: CommitterOptions) {
    this.#options = options;
  }

  write(write: AtomicWrite): Promise<CommitResult | null> {
    return this.#group.submit({ kind: "write", write });
  }

  expire(now: number, limit: number): Promise<number> {
    return this.#group.submit({ kind: "expire", now, limit });
  }

  /** See `KvStorage.onCommitGroup`. */
  onGroup(listener: (size: number) => void): () => void {
    return this.#group.onGroup(listener);
  }

  /** Refuses new jobs, then resolves once every submitted job has been committed or refused. */
  drain(): Promise<void> {
    return this.#group.close();
  }

  /**
   * Runs `work` on one pooled connection; `work` opens the transaction (pipelined with its
   * first reads) and ends it with {@link finish}. A deadlock or serialization failure rolls it
   * back and runs it again; so does a lost connection, on a new one, when the transaction surely
   * did not commit or `idempotent` says running it twice is harmless (for a while, then
   * `UNAVAILABLE`). A commit whose connection was lost with its outcome unknown is never run
   * again: it fails with `UNAVAILABLE` saying so. Any other failure rolls back and surfaces as
   * `STORAGE_ERROR`.
   */
  async transaction<T>(
    work: (client: pg.PoolClient) => Promise<T>,
    options: { idempotent?: boolean } = {},
  ): Promise<T> {
    const deadline = Date.now() + RECONNECT_WINDOW;
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.#options.pool.connect();
      } catch (cause) {
        if (Date.now() < deadline) {
          await reconnectDelay(attempt);
          continue;
        }
        throw unavailable(cause, false);
      }
      let broken: Error | undefined;
      try {
        return await work(client);
      } catch (error) {
        await client.query("ROLLBACK").catch((cause: Error) => {
          broken = cause;
        });
        if (!broken && isRetryable(error) && attempt < MAX_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 2 ** attempt));
          continue;
        }
        if (broken || connectionLost(error)) {
          broken ??= error as Error;
          const rerun = options.idempotent === true || surelyAborted(error);
          if (rerun && Date.now() < deadline) {
            await reconnectDelay(attempt);
            continue;
          }
          throw unavailable(error, !rerun);
        }
        throw storageError(error);
      } finally {
        client.release(broken);
      }
    }
  }

  /**
   * Takes the commit lock inside `client`'s transaction and reads what `plan` names, and the
   * change log since the feed's last report (which keeps the feed and its cache exact).
   */
  async open(client: pg.ClientBase, plan: CommitPlan): Promise<OpenBatch> {
    const { sql, feed, batch: options } = this.#options;
    const since = feed.sinceReported();
    const opened = await CommitBatch.open(client, sql, options, {
      ...plan,
      extra: [...(plan.extra ?? []), since.query],
    });
    const log = opened.extra.pop()!;
    return {
      batch: opened.batch,
      extra: opened.extra,
      foreign: changesOf(log.rows, since.after).events,
    };
  }

  /**
   * Stores `writes` and what `opened` committed, announces it, commits, then reports it to this
   * process's listeners: one round trip. `ready` names queues that got a message ready. A
   * guarded batch (built on cached state) is one statement, its own transaction.
   */
  async finish(
    client: pg.ClientBase,
    opened: OpenBatch | null,
    writes: readonly pg.QueryConfig[],
    ready: readonly Uint8Array[] = [],
  ): Promise<void> {
    const { sql, feed, channel } = this.#options;
    const batch = opened?.batch;
    const committed = batch?.committed === true;
    const queues = [...ready, ...(batch?.readyQueues ?? [])];
    const notify =
      committed || queues.length > 0
        ? {
            channel,
            payload: feed.payload(committed ? batch.version : 0, queues),
            origin: feed.origin,
          }
        : null;
    const queries = [...writes];
    // Under the lock taken to read, a batch that committed nothing has nothing to store; one built
    // on cached state still runs its guard, which is what validates the checks that failed.
    const stores = batch !== undefined && (committed || opened?.guarded === true);
    if (stores) queries.push(batch.write(notify, committed ? this.#trim(batch) : null));
    else if (notify) queries.push(sql.notify(notify.channel, notify.payload));
    if (!opened?.guarded) queries.push({ text: "COMMIT" });
    let results: pg.QueryResult[];
    try {
      results = await pipeline(client, queries);
    } catch (error) {
      if (opened?.guarded && (error as { code?: string }).code === "22012") throw new StaleState();
      throw error;
    }
    if (stores) batch.recall(results[writes.length]!.rows as RecalledRow[]);
    if (opened) {
      feed.deliver([...opened.foreign, ...opened.batch.events], opened.batch.version);
      feed.remember(opened.batch.version, opened.batch.known());
    }
    feed.queues(queues);
  }

  async #flush(group: readonly Job[]): Promise<Outcome[]> {
    try {
      return await this.transaction((client) => this.#commitGroup(client, group));
    } catch (error) {
      // The database refused the group's statement (not a lost connection, whose outcome is
      // unknown): commit each job alone, so that only the one it refused fails.
      if (group.length > 1 && refusedByDatabase(error)) {
        const outcomes: Outcome[] = [];
        for (const job of group) {
          try {
            outcomes.push(...(await this.#flush([job])));
          } catch (alone) {
            outcomes.push({ ok: false, error: alone });
          }
        }
        return outcomes;
      }
      throw error;
    }
  }

  async #commitGroup(client: pg.ClientBase, group: readonly Job[]): Promise<Outcome[]> {
    const { sql, feed, batch: options } = this.#options;
    const writes = group.flatMap((job) => (job.kind === "write" ? [job.write] : []));
    const expiries = group.flatMap((job) => (job.kind === "expire" ? [job] : []));
    const keys = writes.map((w) => keysOf(w.checks, w.mutations));
    const plan = {
      begin: true,
      keys: uniqueKeys(keys.flatMap((k) => k.keys)),
      valueKeys: keys.flatMap((k) => k.valueKeys),
      dedup: writes.flatMap((w) =>
        (w.enqueues ?? []).flatMap((e) => (e.dedup ? [{ queue: e.queue, key: e.dedup.key }] : [])),
      ),
      extra: expiries.map((e) => sql.expired(e.now, e.limit)),
    };
    const known = this.#knownFor(plan, expiries.length > 0);
    if (known) {
      const batch = CommitBatch.fromKnown(sql, options, feed.reported, plan.keys, known);
      const opened: OpenBatch = { batch, extra: [], foreign: [], guarded: true };
      const outcomes = runJobs(opened, group);
      try {
        await this.finish(client, opened, []);
        this.#guardFailures = 0;
        return outcomes;
      } catch (error) {
        if (!(error instanceof StaleState)) throw error;
        if (++this.#guardFailures >= GUARD_FAILURES) this.#coolDown = COOL_DOWN;
      }
    }
    const opened = await this.open(client, plan);
    const outcomes = runJobs(opened, group);
    // A sweep also forgets the dedup keys whose window has passed.
    const latest = expiries.reduce((now, e) => Math.max(now, e.now), Number.NEGATIVE_INFINITY);
    const swept = opened.batch.sweptKeys;
    await this.finish(client, opened, [
      ...(expiries.length > 0 ? [sql.forgetDedup(latest)] : []),
      ...(swept.length > 0 ? [sql.forgetSearchKeys(binaryArray("bytea", swept))] : []),
    ]);
    return outcomes;
  }

  /** The cached state of the plan's keys, when a group can commit on it. */
  #knownFor(plan: CommitPlan, sweeps: boolean): Map<string, StoredEntry | null> | null {
    if (this.#coolDown > 0) {
      this.#coolDown--;
      return null;
    }
    // Sweeps and dedup keys need reads the cache does not hold.
    if (sweeps || plan.dedup.length > 0) return null;
    return this.#options.feed.cache.lookup(plan.keys, plan.valueKeys);
  }

  /**
   * How to trim the change log with `batch` (null: not now), in steps of a tenth of its size:
   * up to `changeLogSize` commits back, and with `changeLogAge` only through commits that old.
   */
  #trim(batch: CommitBatch): { horizon: number; before: number | null } | null {
    const { logSize, logAge } = this.#options;
    const horizon = batch.version - logSize;
    if (horizon <= 0 || horizon - this.#prunedAt < logSize / 10) return null;
    this.#prunedAt = horizon;
    return { horizon, before: logAge > 0 ? batch.now - logAge : null };
  }
}

/** Runs a group's jobs on an opened batch, in order; a job refused with a `KvError` fails alone. */
function runJobs(opened: OpenBatch, group: readonly Job[]): Outcome[] {
  const expired = [...opened.extra];
  return group.map((job): Outcome => {
    try {
      if (job.kind === "expire")
        return { ok: true, value: opened.batch.expire(expired.shift()!.rows as KvRow[], job.now) };
      const { checks, mutations, enqueues, searchDocs, now } = job.write;
      const done = opened.batch.commit(checks, mutations, now, enqueues, false, searchDocs);
      const value: CommitResult | null =
        done &&
        (enqueues?.length
          ? { versionstamp: done.versionstamp, enqueued: done.enqueued }
          : { versionstamp: done.versionstamp });
      return { ok: true, value };
    } catch (error) {
      // A batch stages a write only once all of it computed, so a refused write left no trace.
      if (!(error instanceof KvError)) throw error;
      return { ok: false, error };
    }
  });
}

/** A `STORAGE_ERROR` for an error the server reported, after which its transaction was rolled back. */
function refusedByDatabase(error: unknown): boolean {
  return (
    error instanceof KvError &&
    error.code === "STORAGE_ERROR" &&
    error.cause instanceof pg.DatabaseError
  );
}

function storageError(cause: unknown): KvError {
  if (cause instanceof KvError) return cause;
  return new KvError("STORAGE_ERROR", `PostgreSQL: ${(cause as Error).message}`, { cause });
}
