/**
 * The PostgreSQL driver's queues: one table of messages (ready, leased or dead) and one of dedup
 * keys; enqueues commit with their atomic write (see `commit.ts`).
 *
 * Queue operations run in their own transactions, beside the group commits: a dequeue locks
 * the rows it takes with `FOR UPDATE SKIP LOCKED`, so consumers in any number of processes
 * lease different messages without waiting on each other, and the lease (state, token, expiry)
 * is stored before the row lock is released. A lease that expired is reclaimed by the next
 * dequeue as a failed delivery; when that (or a nack) dead-letters a message, the values for
 * its `keysIfUndelivered` are written as a KV commit, under the commit lock and with its own
 * versionstamp, in the same transaction.
 */
import type pg from "pg";
import type {
  DeadMessage,
  LeasedMessage,
  Mutation,
  QueueStats,
  Settlement,
} from "../../contract/index.js";
import {
  afterExpiry,
  holdsLease,
  lease,
  type MessageColumns,
  messageOf,
  revive,
  STATE_CODE,
  type StoredMessage,
  settled,
  toDead,
  toLeased,
  undeliveredMutations,
} from "../shared/queue-states.js";
import { keysOf } from "./commit.js";
import type { Committer, OpenBatch } from "./group.js";
import { pipeline, rawValueOf, statement } from "./rows.js";

export type QueueSql = ReturnType<typeof queueSql>;

export function queueSql(s: string) {
  const q = `${s}.cellar_queue`;
  return {
    expiredLeases: statement(
      "cellar_q_expired",
      `SELECT * FROM ${q} WHERE queue = $1 AND state = 1 AND locked_until <= $2 ORDER BY seq FOR UPDATE SKIP LOCKED`,
    ),
    ready: statement(
      "cellar_q_ready",
      `SELECT * FROM ${q} WHERE queue = $1 AND state = 0 AND available_at <= $2
      ORDER BY priority DESC, seq LIMIT $3 FOR UPDATE SKIP LOCKED`,
    ),
    byToken: statement(
      "cellar_q_token",
      `SELECT * FROM ${q} WHERE token = $1 AND queue = $2 FOR UPDATE`,
    ),
    ack: statement(
      "cellar_q_ack",
      `DELETE FROM ${q} WHERE token = $1 AND queue = $2 AND state = 1 AND locked_until > $3`,
    ),
    extend: statement(
      "cellar_q_extend",
      `UPDATE ${q} SET locked_until = $4 WHERE token = $1 AND queue = $2 AND state = 1 AND locked_until > $3`,
    ),
    save: statement(
      "cellar_q_save",
      `UPDATE ${q} SET state = u.state, available_at = u.available_at, attempts = u.attempts, token = u.token,
        locked_until = u.locked_until, failed_at = u.failed_at, error = u.error
      FROM unnest($1::int8[], $2::int2[], $3::int8[], $4::int4[], $5::text[], $6::int8[], $7::int8[], $8::text[])
        AS u(seq, state, available_at, attempts, token, locked_until, failed_at, error)
      WHERE ${q}.seq = u.seq`,
    ),
    // An expired lease counts as the failed delivery it became on expiry (`afterExpiry`).
    stats: statement(
      "cellar_q_stats",
      `SELECT count(*) FILTER (WHERE state = 0 AND available_at <= $2) AS pending,
        count(*) FILTER (WHERE state = 0 AND available_at > $2) AS delayed,
        count(*) FILTER (WHERE state = 1) AS "inFlight",
        count(*) FILTER (WHERE state = 2) AS dead,
        min(CASE WHEN state = 0 AND available_at > $2 THEN available_at WHEN state = 1 THEN locked_until END) AS "nextAt"
      FROM (SELECT
          CASE WHEN state = 1 AND locked_until <= $2
            THEN CASE WHEN attempts > jsonb_array_length(backoff) THEN 2 ELSE 0 END
            ELSE state END AS state,
          CASE WHEN state = 1 AND locked_until <= $2
            THEN locked_until + coalesce((backoff ->> (attempts - 1))::int8, 0)
            ELSE available_at END AS available_at,
          locked_until
        FROM ${q} WHERE queue = $1) AS m`,
    ),
    dead: statement(
      "cellar_q_dead",
      `SELECT * FROM ${q} WHERE queue = $1 AND state = 2
        AND (NOT EXISTS (SELECT 1 FROM ${q} WHERE queue = $1 AND id = $2 AND state = 2)
          OR (failed_at, seq) > (SELECT failed_at, seq FROM ${q} WHERE queue = $1 AND id = $2 AND state = 2))
      ORDER BY failed_at, seq LIMIT $3`,
    ),
    deadOne: statement(
      "cellar_q_dead_one",
      `SELECT * FROM ${q} WHERE queue = $1 AND id = $2 AND state = 2`,
    ),
    lockDead: statement(
      "cellar_q_lock_dead",
      `SELECT * FROM ${q} WHERE queue = $1 AND state = 2 ORDER BY seq FOR UPDATE`,
    ),
    lockDeadIds: statement(
      "cellar_q_lock_dead_ids",
      `SELECT m.* FROM unnest($2::text[]) AS u(id) JOIN ${q} m ON m.queue = $1 AND m.id = u.id
      WHERE m.state = 2 ORDER BY m.failed_at, m.seq FOR UPDATE OF m`,
    ),
    deleteDead: statement(
      "cellar_q_delete_dead",
      `DELETE FROM ${q} WHERE queue = $1 AND state = 2`,
    ),
    deleteDeadIds: statement(
      "cellar_q_delete_dead_ids",
      `DELETE FROM ${q} m USING unnest($2::text[]) AS u(id) WHERE m.queue = $1 AND m.id = u.id AND m.state = 2`,
    ),
    names: statement(
      "cellar_q_names",
      `SELECT DISTINCT queue FROM ${q} WHERE queue >= $1 AND queue < $2 ORDER BY queue LIMIT $3`,
    ),
  };
}

interface Row extends MessageColumns {
  backoff: number[];
  undelivered: string[];
  value_json: string | null;
  value_bin: Buffer | null;
}

function toMessage(row: Row): StoredMessage {
  return messageOf(
    row,
    rawValueOf(row.value_json, row.value_bin, row.encoding),
    row.backoff,
    row.undelivered.map((k) => Buffer.from(k, "base64url")),
  );
}

/** Delivery order: higher priority first, then enqueue order. */
const byDelivery = (a: StoredMessage, b: StoredMessage) => b.priority - a.priority || a.seq - b.seq;

/** PostgreSQL text cannot hold U+0000; a handler's error message is kept readable without it. */
const storableError = (error: string) => error.replaceAll("\u0000", "\uFFFD");

export class PostgresQueues {
  readonly #sql: QueueSql;
  readonly #committer: Committer;

  constructor(sql: QueueSql, committer: Committer) {
    this.#sql = sql;
    this.#committer = committer;
  }

  dequeue(
    queue: Uint8Array,
    now: number,
    visibilityTimeout: number,
    limit: number,
  ): Promise<LeasedMessage[]> {
    return this.#transaction(async (client) => {
      const [, expired, ready] = await pipeline(client, [
        { text: "BEGIN" },
        this.#sql.expiredLeases(queue, now),
        this.#sql.ready(queue, now, limit),
      ]);
      const reclaimed = (expired!.rows as Row[]).map((row) => afterExpiry(toMessage(row)));
      const candidates = [
        ...(ready!.rows as Row[]).map(toMessage),
        ...reclaimed.filter((m) => m.state === "ready" && m.availableAt <= now),
      ].sort(byDelivery);
      const leased = candidates.slice(0, limit).map((m) => lease(m, now, visibilityTimeout));
      const saved = new Map<number, StoredMessage>();
      for (const message of [...reclaimed, ...leased]) saved.set(message.seq, message);
      const opened = await this.#deadLetter(client, reclaimed, now);
      const retried = reclaimed.some((m) => m.state === "ready");
      await this.#committer.finish(
        client,
        opened,
        this.#saves([...saved.values()]),
        retried ? [queue] : [],
      );
      return leased.map(toLeased);
    });
  }

  async settle(
    queue: Uint8Array,
    token: string,
    settlement: Settlement,
    now: number,
  ): Promise<boolean> {
    // An ack or an extend is one statement that holds the lease as `holdsLease` does and does what
    // `settled` says: no read round trip. A nack may dead-letter, so it reads the message first.
    if (settlement.type === "ack")
      return (await this.#run(this.#sql.ack(token, queue, now))).rowCount === 1;
    if (settlement.type === "extend") {
      return (
        (await this.#run(this.#sql.extend(token, queue, now, now + settlement.ms))).rowCount === 1
      );
    }
    return this.#transaction(async (client) => {
      const [, found] = await pipeline(client, [
        { text: "BEGIN" },
        this.#sql.byToken(token, queue),
      ]);
      const row = found!.rows[0] as Row | undefined;
      const message = row && toMessage(row);
      if (!message || !holdsLease(message, token, now)) {
        await this.#committer.finish(client, null, []);
        return false;
      }
      const error = storableError(settlement.error ?? "nack");
      const next = settled(message, { ...settlement, error }, now)!;
      const opened = await this.#deadLetter(client, [next], now);
      await this.#committer.finish(
        client,
        opened,
        this.#saves([next]),
        next.state === "ready" ? [queue] : [],
      );
      return true;
    });
  }

  async stats(queue: Uint8Array, now: number): Promise<QueueStats> {
    const { rows } = await this.#run(this.#sql.stats(queue, now));
    return rows[0] as QueueStats;
  }

  async listDead(queue: Uint8Array, limit: number, after?: string): Promise<DeadMessage[]> {
    const { rows } = await this.#run(this.#sql.dead(queue, after ?? null, limit));
    return (rows as Row[]).map((row) => toDead(toMessage(row)));
  }

  async getDead(queue: Uint8Array, id: string): Promise<DeadMessage | null> {
    const { rows } = await this.#run(this.#sql.deadOne(queue, id));
    const row = rows[0] as Row | undefined;
    return row ? toDead(toMessage(row)) : null;
  }

  requeueDead(queue: Uint8Array, ids: readonly string[] | null, now: number): Promise<number> {
    return this.#transaction(async (client) => {
      const lock =
        ids === null ? this.#sql.lockDead(queue) : this.#sql.lockDeadIds(queue, [...new Set(ids)]);
      const [, dead] = await pipeline(client, [{ text: "BEGIN" }, lock]);
      const revived = (dead!.rows as Row[]).map((row) => revive(toMessage(row), now));
      await this.#committer.finish(
        client,
        null,
        this.#saves(revived),
        revived.length > 0 ? [queue] : [],
      );
      return revived.length;
    });
  }

  async deleteDead(queue: Uint8Array, ids: readonly string[] | null): Promise<number> {
    const query =
      ids === null
        ? this.#sql.deleteDead(queue)
        : this.#sql.deleteDeadIds(queue, [...new Set(ids)]);
    return (await this.#run(query)).rowCount ?? 0;
  }

  /**
   * For messages that just died, commits their values under their `keysIfUndelivered`, as a KV
   * commit inside the caller's transaction; null when no value is to be written.
   */
  async #deadLetter(
    client: pg.ClientBase,
    messages: readonly StoredMessage[],
    now: number,
  ): Promise<OpenBatch | null> {
    const mutations: Mutation[] = messages.flatMap((m) =>
      m.state === "dead" ? undeliveredMutations(m) : [],
    );
    if (mutations.length === 0) return null;
    const opened = await this.#committer.open(client, {
      begin: false,
      ...keysOf([], mutations),
      dedup: [],
    });
    opened.batch.commit([], mutations, now);
    return opened;
  }

  #saves(messages: readonly StoredMessage[]): pg.QueryConfig[] {
    if (messages.length === 0) return [];
    return [
      this.#sql.save(
        messages.map((m) => m.seq),
        messages.map((m) => STATE_CODE[m.state]),
        messages.map((m) => m.availableAt),
        messages.map((m) => m.attempts),
        messages.map((m) => m.token),
        messages.map((m) => m.lockedUntil),
        messages.map((m) => m.failedAt),
        messages.map((m) => m.error),
      ),
    ];
  }

  /**
   * A queue operation's transaction. Each may run again after a lost connection whatever its
   * outcome: a lease taken twice expires and the message is delivered again (delivery is at
   * least once), and a settlement consumes its lock token, so a second run finds it gone.
   */
  #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.#committer.transaction(work, { idempotent: true });
  }

  async #run(query: pg.QueryConfig): Promise<pg.QueryResult> {
    return this.#transaction((client) => client.query(query));
  }

  /** Names of the queues in `[start, end)` holding any message, in byte order. */
  async names(start: Uint8Array, end: Uint8Array, limit: number): Promise<Uint8Array[]> {
    const { rows } = await this.#run(this.#sql.names(start, end, limit));
    return rows.map((row: { queue: Buffer }) => new Uint8Array(row.queue));
  }
}
