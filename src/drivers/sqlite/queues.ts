/**
 * The SQLite driver's queues: one table of messages (ready, leased or dead) and one of dedup
 * keys. Every state change runs inside the driver's group-commit transaction, so a lease is
 * taken under SQLite's write lock: two processes on one file never hold the same message.
 *
 * Each state has its own partial index, so a message is in one of them at a time: an enqueue
 * writes the row and two index entries, a lease moves one entry, an ack deletes three. A lock
 * token is the message's `seq`, a dot and a random UUID: an ack finds its row by primary key
 * and checks the rest, with no index of tokens to keep.
 */
import type Database from "better-sqlite3";
import { ENCODING_TAG } from "../../codec/value.js";
import type {
  DeadMessage,
  Enqueue,
  EnqueueResult,
  LeasedMessage,
  QueueStats,
  Settlement,
} from "../../contract/index.js";
import {
  afterExpiry,
  holdsLease,
  lease,
  type MessageColumns,
  messageOf,
  newMessage,
  revive,
  STATE_CODE,
  type StoredMessage,
  settled,
  toDead,
  toLeased,
  undeliveredMutations,
} from "../shared/queue-states.js";
import type { Tx } from "./index.js";
import { toRawValue } from "./schema.js";

export const QUEUE_SCHEMA = `
CREATE TABLE IF NOT EXISTS cellar_queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue BLOB NOT NULL,
  id TEXT NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  available_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  backoff TEXT NOT NULL,
  undelivered TEXT NOT NULL,
  value NOT NULL,
  encoding INTEGER NOT NULL,
  token TEXT,
  locked_until INTEGER,
  enqueued_at INTEGER NOT NULL,
  failed_at INTEGER,
  error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS cellar_queue_id ON cellar_queue (queue, id);
DROP INDEX IF EXISTS cellar_queue_order;
DROP INDEX IF EXISTS cellar_queue_lease;
DROP INDEX IF EXISTS cellar_queue_token;
CREATE INDEX IF NOT EXISTS cellar_queue_ready ON cellar_queue (queue, priority DESC, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS cellar_queue_leased ON cellar_queue (queue, locked_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS cellar_queue_dead ON cellar_queue (queue, failed_at, seq) WHERE state = 2;
CREATE TABLE IF NOT EXISTS cellar_queue_dedup (
  queue BLOB NOT NULL,
  key TEXT NOT NULL,
  id TEXT NOT NULL,
  until INTEGER NOT NULL,
  PRIMARY KEY (queue, key)
) WITHOUT ROWID;
`;

interface Row extends MessageColumns {
  backoff: string;
  undelivered: string;
  value: string | Buffer;
}

function toMessage(row: Row): StoredMessage {
  return messageOf(
    row,
    toRawValue(row.value, row.encoding),
    JSON.parse(row.backoff) as number[],
    (JSON.parse(row.undelivered) as string[]).map((k) => Buffer.from(k, "base64url")),
  );
}

/** The `seq` a lock token begins with; null for a token of another shape. */
function seqOf(token: string): number | null {
  const dot = token.indexOf(".");
  const seq = dot > 0 ? Number(token.slice(0, dot)) : Number.NaN;
  return Number.isSafeInteger(seq) ? seq : null;
}

export class SqliteQueues {
  readonly #stmt;

  constructor(db: Database.Database) {
    const p = (sql: string) => db.prepare(sql);
    this.#stmt = {
      insert: p(`INSERT INTO cellar_queue
        (queue, id, state, priority, available_at, attempts, backoff, undelivered, value, encoding, enqueued_at)
        VALUES (@queue, @id, 0, @priority, @availableAt, 0, @backoff, @undelivered, @value, @encoding, @enqueuedAt)`),
      dedupGet: p("SELECT id, until FROM cellar_queue_dedup WHERE queue = ? AND key = ?"),
      dedupSet: p(
        "INSERT OR REPLACE INTO cellar_queue_dedup (queue, key, id, until) VALUES (?, ?, ?, ?)",
      ),
      expiredLeases: p(
        "SELECT * FROM cellar_queue WHERE queue = ? AND state = 1 AND locked_until <= ?",
      ),
      ready: p(`SELECT * FROM cellar_queue WHERE queue = ? AND state = 0 AND available_at <= ?
        ORDER BY priority DESC, seq LIMIT ?`),
      byToken: p(
        "SELECT * FROM cellar_queue WHERE seq = @seq AND token = @token AND queue = @queue",
      ),
      // Tokens of leases taken before tokens began with the seq: a scan of the queue's leases.
      byBareToken: p(
        "SELECT * FROM cellar_queue WHERE queue = @queue AND state = 1 AND token = @token",
      ),
      // An ack and an extend hold the lease (`holdsLease`) when their one statement finds its row.
      ack: p(`DELETE FROM cellar_queue WHERE seq = @seq AND token = @token AND queue = @queue
        AND state = 1 AND locked_until > @now`),
      extend: p(`UPDATE cellar_queue SET locked_until = @until WHERE seq = @seq AND token = @token
        AND queue = @queue AND state = 1 AND locked_until > @now`),
      lease: p(`UPDATE cellar_queue SET state = 1, attempts = @attempts, token = @token,
        locked_until = @lockedUntil WHERE seq = @seq`),
      update:
        p(`UPDATE cellar_queue SET state = @state, available_at = @availableAt, attempts = @attempts,
        token = @token, locked_until = @lockedUntil, failed_at = @failedAt, error = @error WHERE seq = @seq`),
      remove: p("DELETE FROM cellar_queue WHERE seq = ?"),
      // An expired lease counts as the failed delivery it became on expiry (`afterExpiry`).
      stats: p(`SELECT
          coalesce(sum(state = 0 AND available_at <= @now), 0) AS pending,
          coalesce(sum(state = 0 AND available_at > @now), 0) AS delayed,
          coalesce(sum(state = 1), 0) AS inFlight,
          coalesce(sum(state = 2), 0) AS dead,
          min(CASE WHEN state = 0 AND available_at > @now THEN available_at WHEN state = 1 THEN locked_until END) AS nextAt
        FROM (SELECT
            CASE WHEN state = 1 AND locked_until <= @now
              THEN CASE WHEN attempts > json_array_length(backoff) THEN 2 ELSE 0 END
              ELSE state END AS state,
            CASE WHEN state = 1 AND locked_until <= @now
              THEN locked_until + coalesce(backoff ->> (attempts - 1), 0)
              ELSE available_at END AS available_at,
            locked_until
          FROM cellar_queue WHERE queue = @queue)`),
      dead: p(`SELECT * FROM cellar_queue WHERE queue = @queue AND state = 2
        AND (NOT EXISTS (SELECT 1 FROM cellar_queue WHERE queue = @queue AND id = @after AND state = 2)
          OR (failed_at, seq) > (SELECT failed_at, seq FROM cellar_queue WHERE queue = @queue AND id = @after AND state = 2))
        ORDER BY failed_at, seq LIMIT @limit`),
      pruneDedup: p("DELETE FROM cellar_queue_dedup WHERE until <= ?"),
      deadOne: p("SELECT * FROM cellar_queue WHERE queue = ? AND id = ? AND state = 2"),
      deadAll: p("SELECT * FROM cellar_queue WHERE queue = ? AND state = 2"),
      deleteDeadOne: p("DELETE FROM cellar_queue WHERE queue = ? AND id = ? AND state = 2"),
      deleteDeadAll: p("DELETE FROM cellar_queue WHERE queue = ? AND state = 2"),
      readyQueues: p("SELECT DISTINCT queue FROM cellar_queue WHERE state = 0").pluck(),
      purge: p("DELETE FROM cellar_queue WHERE queue >= ? AND queue < ?"),
      purgeDedup: p("DELETE FROM cellar_queue_dedup WHERE queue >= ? AND queue < ?"),
    };
  }

  enqueue(tx: Tx, enqueue: Enqueue, now: number): EnqueueResult {
    if (enqueue.dedup) {
      const seen = this.#stmt.dedupGet.get(enqueue.queue, enqueue.dedup.key) as
        | { id: string; until: number }
        | undefined;
      if (seen && seen.until > now) return { id: seen.id, deduplicated: true };
      this.#stmt.dedupSet.run(enqueue.queue, enqueue.dedup.key, enqueue.id, enqueue.dedup.until);
    }
    const message = newMessage(enqueue, 0, now);
    this.#stmt.insert.run({
      queue: enqueue.queue,
      id: message.id,
      priority: message.priority,
      availableAt: message.availableAt,
      backoff: JSON.stringify(message.backoffSchedule),
      undelivered: JSON.stringify(
        message.keysIfUndelivered.map((k) => Buffer.from(k).toString("base64url")),
      ),
      value: message.value.data,
      encoding: ENCODING_TAG[message.value.encoding],
      enqueuedAt: now,
    });
    tx.ready(enqueue.queue);
    return { id: message.id, deduplicated: false };
  }

  dequeue(
    tx: Tx,
    queue: Uint8Array,
    now: number,
    visibilityTimeout: number,
    limit: number,
  ): LeasedMessage[] {
    for (const row of this.#stmt.expiredLeases.all(queue, now) as Row[]) {
      this.#saveFailed(tx, queue, afterExpiry(toMessage(row)), now);
    }
    return (this.#stmt.ready.all(queue, now, limit) as Row[]).map((row) => {
      const leased = lease(toMessage(row), now, visibilityTimeout);
      const token = `${leased.seq}.${leased.token}`;
      this.#stmt.lease.run({
        seq: leased.seq,
        attempts: leased.attempts,
        token,
        lockedUntil: leased.lockedUntil,
      });
      return toLeased({ ...leased, token });
    });
  }

  settle(tx: Tx, queue: Uint8Array, token: string, settlement: Settlement, now: number): boolean {
    const seq = seqOf(token);
    if (seq !== null && settlement.type === "ack")
      return this.#stmt.ack.run({ seq, token, queue, now }).changes === 1;
    if (seq !== null && settlement.type === "extend") {
      const until = now + settlement.ms;
      return this.#stmt.extend.run({ seq, token, queue, now, until }).changes === 1;
    }
    const row = (
      seq === null
        ? this.#stmt.byBareToken.get({ queue, token })
        : this.#stmt.byToken.get({ seq, token, queue })
    ) as Row | undefined;
    if (!row) return false;
    const message = toMessage(row);
    if (!holdsLease(message, token, now)) return false;
    const next = settled(message, settlement, now);
    if (next === null) this.#stmt.remove.run(message.seq);
    else if (next.state === "leased") this.#save(next);
    else this.#saveFailed(tx, queue, next, now);
    return true;
  }

  stats(queue: Uint8Array, now: number): QueueStats {
    return this.#stmt.stats.get({ queue, now }) as QueueStats;
  }

  /** Forgets dedup keys whose window has passed. */
  pruneDedup(now: number): void {
    this.#stmt.pruneDedup.run(now);
  }

  /** Queues that have messages waiting (ready now or after a delay): their consumers look again. */
  readyQueues(): Uint8Array[] {
    return this.#stmt.readyQueues.all() as Buffer[];
  }

  /** Deletes the messages and dedup keys of every queue named in `[start, end)`. */
  purge(start: Uint8Array, end: Uint8Array): void {
    this.#stmt.purge.run(start, end);
    this.#stmt.purgeDedup.run(start, end);
  }

  listDead(queue: Uint8Array, limit: number, after?: string): DeadMessage[] {
    return (this.#stmt.dead.all({ queue, limit, after: after ?? null }) as Row[]).map((row) =>
      toDead(toMessage(row)),
    );
  }

  getDead(queue: Uint8Array, id: string): DeadMessage | null {
    const row = this.#stmt.deadOne.get(queue, id) as Row | undefined;
    return row ? toDead(toMessage(row)) : null;
  }

  requeueDead(tx: Tx, queue: Uint8Array, ids: readonly string[] | null, now: number): number {
    const rows =
      ids === null
        ? (this.#stmt.deadAll.all(queue) as Row[])
        : ids.flatMap((id) => (this.#stmt.deadOne.get(queue, id) as Row | undefined) ?? []);
    for (const row of rows) this.#save(revive(toMessage(row), now));
    if (rows.length > 0) tx.ready(queue);
    return rows.length;
  }

  deleteDead(queue: Uint8Array, ids: readonly string[] | null): number {
    if (ids === null) return this.#stmt.deleteDeadAll.run(queue).changes;
    return ids.reduce((n, id) => n + this.#stmt.deleteDeadOne.run(queue, id).changes, 0);
  }

  /** Stores a message after a failed delivery; `now` is when that is recorded. */
  #saveFailed(tx: Tx, queue: Uint8Array, next: StoredMessage, now: number): void {
    this.#save(next);
    if (next.state === "dead") {
      const mutations = undeliveredMutations(next);
      if (mutations.length > 0) tx.commit([], mutations, now);
    } else {
      tx.ready(queue);
    }
  }

  #save(message: StoredMessage): void {
    this.#stmt.update.run({
      seq: message.seq,
      state: STATE_CODE[message.state],
      availableAt: message.availableAt,
      attempts: message.attempts,
      token: message.token,
      lockedUntil: message.lockedUntil,
      failedAt: message.failedAt,
      error: message.error,
    });
  }
}
