/**
 * The PostgreSQL driver's change feed: reports every commit, this process's and others', to
 * `onChange` listeners exactly once and in version order.
 *
 * The change log table is the source of truth; notifications are only wake-ups. Every commit
 * sends `NOTIFY` on the schema's channel inside its transaction, carrying its version, the
 * queues it made ready and the id of the process that made it, unless no other process is
 * listening. This process's commits are reported from the commit path (which reads the log
 * since the last reported version under the commit lock, so earlier commits of other processes
 * come first). A notification from another process makes the feed read the log from the last
 * reported version up to the head, so a dropped notification or a reconnect of the listening
 * connection loses nothing: the next read picks up everything since, and a reconnect reads at
 * once. Each log row holds what its commit did to its key, both entries included (see
 * `change-log.ts`), so another process's commit is reported with the same `entries` as the
 * process that made it reported.
 *
 * Listening processes are registered in `cellar_listeners` (their listening connection's pid),
 * and a commit skips its `NOTIFY` when it finds no other process there: delivering a process's
 * own notifications back to it costs a commit about a sixth of its time. A process registers
 * after it starts listening, and before it reads the head it starts from, under the commit lock
 * and moving the version on: a commit that decided on a snapshot without the registration then
 * either committed before that head, or, built on cached state, finds the version moved and
 * runs again under the lock, where it sees the registration. A reconnect registers again before
 * reading the log. A dead process's row stays until a process registers and finds its
 * connection gone; meanwhile commits merely notify it for nothing. Every process sharing a
 * database must therefore register: run one Cellar version (schema 3 or later) across them.
 *
 * The feed also keeps the {@link EntryCache} true: it holds the stored state as of the last
 * reported version, so every reported commit evicts the keys it changed.
 */
import pg from "pg";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import type { StoredEntry } from "../../contract/apply.js";
import type { ChangeEvent } from "../../contract/index.js";
import { EntryCache } from "./cache.js";
import { CHANGE_COLUMNS, type ChangeRow, groupChanges } from "./change-log.js";
import { statement, TYPES } from "./rows.js";

/** Rows of one log read; beyond it the feed reports a reset instead of the changes. */
const MAX_ROWS = 50_000;
/** NOTIFY payloads are limited to 8000 bytes; past this the queues are named as "*". */
const MAX_PAYLOAD = 7000;

export type FeedSql = ReturnType<typeof feedSql>;

export function feedSql(s: string) {
  return {
    since: statement(
      "cellar_feed_since",
      `SELECT h.value AS head, p.value AS pruned, c.*
      FROM ${s}.cellar_meta h CROSS JOIN ${s}.cellar_meta p
      LEFT JOIN LATERAL (
        SELECT ${CHANGE_COLUMNS} FROM ${s}.cellar_changes WHERE vs > $1 AND vs <= h.value ORDER BY vs, key LIMIT ${MAX_ROWS}
      ) c ON true
      WHERE h.name = 'version' AND p.name = 'pruned'`,
    ),
    // A process that died without unregistering leaves a row whose connection is gone.
    register: statement(
      "cellar_register",
      `WITH bump AS (UPDATE ${s}.cellar_meta SET value = value + 1 WHERE name = 'version' RETURNING value),
        gone AS (DELETE FROM ${s}.cellar_listeners l WHERE origin <> $1
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid)),
        joined AS (INSERT INTO ${s}.cellar_listeners (origin, pid) SELECT $1, $2 FROM bump
          ON CONFLICT (origin) DO UPDATE SET pid = excluded.pid)
      SELECT value AS head FROM bump`,
    ),
    unregister: statement(
      "cellar_unregister",
      `DELETE FROM ${s}.cellar_listeners WHERE origin = $1`,
    ),
    readyQueues: statement(
      "cellar_ready_queues",
      `SELECT DISTINCT queue FROM ${s}.cellar_queue WHERE state = 0`,
    ),
  };
}

/**
 * A row of a log read: the head and the pruned horizon, with a log row, or with NULLs in its
 * columns when the read found none.
 */
export type SinceRow = { head: number; pruned: number } & (
  | ChangeRow
  | { [column in keyof ChangeRow]: null }
);

/** The log rows of a log read, as change events. */
export function sinceChanges(rows: readonly SinceRow[]): ChangeEvent[] {
  return groupChanges(rows.filter((row): row is SinceRow & ChangeRow => row.vs !== null));
}

interface Payload {
  /** The committing process. */
  readonly o: string;
  /** Its latest version. */
  readonly v: number;
  /** Queues with a message ready, base64url; "*" for "look at every queue". */
  readonly q?: string[] | "*";
}

/**
 * The changes of a log read after `after`, and the head they reach: a single reset when the
 * log no longer holds them all, or when there are too many to report one by one.
 */
export function changesOf(
  rows: readonly SinceRow[],
  after: number,
): { events: ChangeEvent[]; head: number } {
  const first = rows[0];
  if (!first) throw new Error("cellar_meta lacks its version and pruned rows");
  if (after < first.pruned || rows.length >= MAX_ROWS) {
    return {
      events: [{ versionstamp: formatVersionstamp(first.head), keys: [], reset: true }],
      head: first.head,
    };
  }
  return { events: sinceChanges(rows), head: first.head };
}

export class ChangeFeed {
  readonly #pool: pg.Pool;
  readonly #config: pg.ClientConfig;
  readonly #sql: FeedSql;
  readonly #channel: string;
  readonly origin: string;
  /** Stored entries as of {@link reported}. */
  readonly cache: EntryCache;
  readonly #listeners = new Set<(change: ChangeEvent) => void>();
  /** Highest version reported to listeners: every commit up to it was reported or predates them. */
  #reported = 0;
  #client: pg.Client | null = null;
  #pulling = false;
  #again = false;
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(
    pool: pg.Pool,
    config: pg.ClientConfig,
    sql: FeedSql,
    channel: string,
    origin: string,
    cacheBytes: number,
  ) {
    this.#pool = pool;
    this.cache = new EntryCache(cacheBytes);
    this.#config = config;
    this.#sql = sql;
    this.#channel = channel;
    this.origin = origin;
  }

  /** Starts listening, then takes the current head as reported: later commits are all seen. */
  async start(): Promise<void> {
    this.#reported = Math.max(this.#reported, await this.#connect());
  }

  get reported(): number {
    return this.#reported;
  }

  /** Whether anyone listens; without listeners, other processes' commits are not read from the log. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  onChange(listener: (change: ChangeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The log read since the last reported version, for a commit to run under its lock. */
  sinceReported(): { query: pg.QueryConfig; after: number } {
    return { query: this.#sql.since(this.#reported), after: this.#reported };
  }

  /**
   * Reports the `events` not reported yet, then marks everything up to `upTo` as reported.
   * `events` are sorted and hold every commit from a version at most the reported one up to
   * `upTo` (a reset stands for all of them up to its versionstamp).
   */
  deliver(events: readonly ChangeEvent[], upTo: number): void {
    for (const event of events) {
      const version = parseVersionstamp(event.versionstamp);
      if (version <= this.#reported) continue;
      this.#reported = version;
      if (event.reset) this.cache.clear();
      else this.cache.forget(event.keys);
      this.#emit(event);
    }
    this.#reported = Math.max(this.#reported, upTo);
  }

  /** Records the stored state of keys as of `version`, if that is still the reported one. */
  remember(version: number, entries: Iterable<readonly [Uint8Array, StoredEntry | null]>): void {
    if (version !== this.#reported) return;
    for (const [key, entry] of entries) this.cache.set(key, entry);
  }

  /** Wakes the consumers of `queues` in this process. */
  queues(queues: readonly Uint8Array[]): void {
    if (queues.length > 0)
      this.#emit({ versionstamp: formatVersionstamp(this.#reported), keys: [], queues });
  }

  /** The NOTIFY payload of a commit by this process. */
  payload(version: number, queues: readonly Uint8Array[]): string {
    const q = queues.map((queue) => Buffer.from(queue).toString("base64url"));
    const text = JSON.stringify({
      o: this.origin,
      v: version,
      ...(q.length > 0 && { q }),
    } satisfies Payload);
    return text.length <= MAX_PAYLOAD
      ? text
      : JSON.stringify({ o: this.origin, v: version, q: "*" } satisfies Payload);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    for (const timer of this.#timers) clearTimeout(timer);
    const client = this.#client;
    this.#client = null;
    if (client) await this.#pool.query(this.#sql.unregister(this.origin)).catch(() => undefined);
    await client?.end().catch(() => undefined);
  }

  #emit(change: ChangeEvent): void {
    for (const listener of this.#listeners) listener(change);
  }

  /** Connects, listens and registers (see above); resolves to the head as of the registration. */
  async #connect(): Promise<number> {
    const client = new pg.Client({ ...this.#config, types: TYPES });
    const lost = () => this.#lost(client);
    client.on("error", lost);
    client.on("end", lost);
    client.on("notification", (message) => {
      if (message.channel === this.#channel && message.payload) this.#notified(message.payload);
    });
    await client.connect();
    let head: number;
    try {
      const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await client.query(`LISTEN "${this.#channel}"`);
      const registered = await this.#pool.query(this.#sql.register(this.origin, rows[0]!.pid));
      head = (registered.rows[0] as { head: number }).head;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    // The listening connection alone must not keep the process alive, as SQLite's timers do not.
    (client as unknown as { unref(): void }).unref();
    this.#client = client;
    return head;
  }

  #notified(text: string): void {
    let payload: Payload;
    try {
      payload = JSON.parse(text) as Payload;
    } catch {
      return;
    }
    if (payload.o === this.origin) return;
    if (payload.q === "*") void this.#wakeAllQueues();
    else if (payload.q) this.queues(payload.q.map((q) => Buffer.from(q, "base64url")));
    if (payload.v > this.#reported) {
      if (this.active) {
        void this.#pull();
      } else {
        // Nobody listens, so the log is not read: what changed is unknown.
        this.#reported = payload.v;
        this.cache.clear();
      }
    }
  }

  /** Reads the log from the last reported version and reports what it finds, one read at a time. */
  async #pull(): Promise<void> {
    if (this.#pulling) {
      this.#again = true;
      return;
    }
    this.#pulling = true;
    try {
      do {
        this.#again = false;
        const after = this.#reported;
        const { rows } = await this.#pool.query(this.#sql.since(after));
        const { events, head } = changesOf(rows as SinceRow[], after);
        if (!this.#closed) this.deliver(events, head);
      } while (this.#again && !this.#closed);
    } catch {
      this.#retry(() => this.#pull());
    } finally {
      this.#pulling = false;
    }
  }

  async #wakeAllQueues(): Promise<void> {
    try {
      const { rows } = await this.#pool.query(this.#sql.readyQueues());
      if (!this.#closed) this.queues(rows.map((row: { queue: Buffer }) => row.queue));
    } catch {
      this.#retry(() => this.#wakeAllQueues());
    }
  }

  #lost(client: pg.Client): void {
    if (this.#closed || this.#client !== client) return;
    this.#client = null;
    client.end().catch(() => undefined);
    this.#reconnect(50);
  }

  #reconnect(delay: number): void {
    this.#retry(async () => {
      try {
        await this.#connect();
      } catch {
        this.#reconnect(Math.min(delay * 2, 2000));
        return;
      }
      // Whatever was committed while the connection was down is in the log.
      void this.#pull();
      void this.#wakeAllQueues();
    }, delay);
  }

  #retry(run: () => Promise<void>, delay = 100): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      void run();
    }, delay);
    timer.unref();
    this.#timers.add(timer);
  }
}
