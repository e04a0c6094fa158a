/**
 * Queues: at-least-once delivery with leases, retries on a backoff schedule, priorities,
 * delays, dedup keys and a dead-letter queue. `kv.enqueue` / `kv.listenQueue` keep Deno KV's
 * shape; `kv.queue(name)` gives the lower-level API (dequeue with a lock token, ack, nack,
 * extend, stats, dead letters).
 */
import { uuidv7 } from "uuidv7";
import { encodeKey, type KvKey } from "../codec/key.js";
import { decodeValue } from "../codec/value.js";
import type {
  DeadMessage,
  Enqueue,
  LeasedMessage,
  QueueStats,
  Settlement,
} from "../contract/index.js";
import { describe, fail, isOutage, KvError } from "../errors.js";
import { assertEnqueue, MAX_DELAY } from "./commit.js";
import type { Database } from "./database.js";
import type { Keyspace } from "./keyspace.js";
import { assertOptions } from "./limits.js";
import type { QueueHandle } from "./queue-handle.js";
import { afterMicrotasks } from "./timers.js";
import { warn } from "./warn.js";

export const DEFAULT_QUEUE = "default";
const ENQUEUE_OPTIONS = [
  "delay",
  "backoffSchedule",
  "keysIfUndelivered",
  "priority",
  "dedupKey",
  "dedupWindow",
];
const DEFAULT_BACKOFF = [100, 1000, 5000, 30_000, 60_000];
const DEFAULT_DEDUP_WINDOW = 60 * 60 * 1000;
const DEFAULT_VISIBILITY = 30_000;
const IDLE_RECHECK = 1000;

export interface KvEnqueueOptions {
  /** Milliseconds before the first delivery (at most 30 days). */
  readonly delay?: number;
  /** Milliseconds before each retry; its length is the number of retries (default 5 retries:
   *  100 ms, 1 s, 5 s, 30 s, 60 s). */
  readonly backoffSchedule?: readonly number[];
  /** Keys that receive the value if every delivery fails. */
  readonly keysIfUndelivered?: readonly KvKey[];
  /** Higher first (default 0); FIFO within a priority. */
  readonly priority?: number;
  /** A second enqueue with the same key within `dedupWindow` is a no-op that says so. */
  readonly dedupKey?: string;
  /** Milliseconds a dedup key holds (default one hour). */
  readonly dedupWindow?: number;
}

/** A message leased to this consumer. Settle it with `ack`, `nack` or `extend` and its `token`. */
export interface KvQueueMessage<T = unknown> {
  readonly id: string;
  readonly value: T;
  readonly priority: number;
  /** Deliveries so far, this one included. */
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly enqueuedAt: number;
  readonly token: string;
  readonly lockedUntil: number;
}

export interface KvDeadMessage<T = unknown> {
  readonly id: string;
  readonly value: T;
  readonly priority: number;
  readonly attempts: number;
  readonly enqueuedAt: number;
  readonly failedAt: number;
  readonly error: string | null;
}

export interface KvEnqueueResult {
  readonly ok: true;
  readonly versionstamp: string;
  readonly id: string;
  readonly deduplicated: boolean;
}

export interface ListenOptions {
  /** Handlers running at once (default 1). */
  readonly concurrency?: number;
  /** Lease length in ms, renewed while the handler runs (default 30 s). */
  readonly visibilityTimeout?: number;
  /** Stops listening; the returned promise resolves once running handlers finish. */
  readonly signal?: AbortSignal;
}

export type QueueHandler<T> = (value: T, message: KvQueueMessage<T>) => unknown | Promise<unknown>;

/** Validates enqueue options and builds the driver's message. */
export function buildEnqueue(
  db: Database,
  keyspace: Keyspace,
  queue: Uint8Array,
  value: unknown,
  options: KvEnqueueOptions = {},
): Enqueue {
  assertOptions("enqueue", options, ENQUEUE_OPTIONS);
  const now = db.now();
  const delay = options.delay ?? 0;
  if (!Number.isSafeInteger(delay) || delay < 0 || delay > MAX_DELAY) {
    fail(
      "INVALID_ARGUMENT",
      `delay must be an integer of milliseconds in [0, ${MAX_DELAY}], got ${describe(options.delay)}`,
    );
  }
  const schedule = options.backoffSchedule ?? DEFAULT_BACKOFF;
  if (!Array.isArray(schedule)) fail("INVALID_ARGUMENT", "backoffSchedule must be an array");
  const keys = options.keysIfUndelivered ?? [];
  if (!Array.isArray(keys)) fail("INVALID_ARGUMENT", "keysIfUndelivered must be an array of keys");
  let dedup: Enqueue["dedup"];
  if (options.dedupKey !== undefined) {
    const window = options.dedupWindow ?? DEFAULT_DEDUP_WINDOW;
    if (!Number.isSafeInteger(window) || window < 1 || window > MAX_DELAY) {
      fail(
        "INVALID_ARGUMENT",
        "dedupWindow must be a positive integer of milliseconds, at most 30 days",
      );
    }
    dedup = { key: options.dedupKey, until: now + window };
  }
  const enqueue: Enqueue = {
    queue,
    id: uuidv7(),
    value: db.encodeValue(value),
    availableAt: now + delay,
    priority: options.priority ?? 0,
    backoffSchedule: [...schedule],
    keysIfUndelivered: keys.map((key) => keyspace.encode(key)),
    ...(dedup && { dedup }),
  };
  // The pipeline checks it again at commit; checking now makes a bad option throw where it is passed.
  assertEnqueue(db, keyspace, enqueue, now);
  return enqueue;
}

/** An enqueue of an atomic operation or transaction: the default queue unless `queue` names one. */
export function buildCommitEnqueue(
  db: Database,
  keyspace: Keyspace,
  value: unknown,
  { queue, ...options }: KvEnqueueOptions & { queue?: string },
): Enqueue {
  return buildEnqueue(db, keyspace, queueId(keyspace, queue ?? DEFAULT_QUEUE), value, options);
}

/** The stored name of queue `name` in a keyspace. */
export function queueId(keyspace: Keyspace, name: string): Uint8Array {
  if (typeof name !== "string" || name.length === 0 || name.length > 256) {
    fail("INVALID_ARGUMENT", `a queue name is 1–256 characters, got ${describe(name)}`);
  }
  return encodeKey([name], keyspace.prefix);
}

const decodeLeased = <T>(m: LeasedMessage): KvQueueMessage<T> => ({
  ...m,
  value: decodeValue(m.value) as T,
});
const decodeDead = <T>(m: DeadMessage): KvDeadMessage<T> => ({
  ...m,
  value: decodeValue(m.value) as T,
});

/**
 * One named queue of a namespace, from `kv.queue(name)`.
 *
 * @example
 * const emails = kv.queue("emails");
 * await emails.enqueue({ to: "ada@example.com" }, { priority: 10 });
 * const msg = await emails.dequeue({ visibilityTimeout: 60_000 });
 * if (msg) await emails.ack(msg.token);
 */
export class KvQueue<T = unknown> {
  readonly #id: Uint8Array;
  readonly #queue: QueueHandle;
  /** A dequeue of `listen` failed and none has succeeded since. */
  #outage = false;

  /** @internal */
  constructor(
    private readonly db: Database,
    private readonly keyspace: Keyspace,
    readonly name: string,
  ) {
    this.#id = queueId(keyspace, name);
    this.#queue = db.queue(this.#id, keyspace);
  }

  async enqueue(value: T, options: KvEnqueueOptions = {}): Promise<KvEnqueueResult> {
    this.db.assertOpen();
    const enqueue = buildEnqueue(this.db, this.keyspace, this.#id, value, options);
    const result = await this.db.commit(
      { checks: [], mutations: [], enqueues: [enqueue] },
      this.keyspace,
    );
    const [enqueued] = result!.enqueued!;
    return {
      ok: true,
      versionstamp: result!.versionstamp,
      id: enqueued!.id,
      deduplicated: enqueued!.deduplicated,
    };
  }

  /** Leases the next ready message, or resolves null when none is ready. */
  async dequeue(options: { visibilityTimeout?: number } = {}): Promise<KvQueueMessage<T> | null> {
    const [message] = await this.dequeueMany(1, options);
    return message ?? null;
  }

  async dequeueMany(
    limit: number,
    options: { visibilityTimeout?: number } = {},
  ): Promise<KvQueueMessage<T>[]> {
    assertOptions("dequeue", options, ["visibilityTimeout"]);
    const leased = await this.#queue.dequeue({
      visibilityTimeout: options.visibilityTimeout ?? DEFAULT_VISIBILITY,
      limit,
    });
    return leased.map((m) => decodeLeased<T>(m));
  }

  /** Deletes a delivered message. Throws `INVALID_TOKEN` for an unknown or expired lease. */
  async ack(token: string): Promise<void> {
    await this.#settle(token, { type: "ack" });
  }

  /** Fails a delivery: retried after `delay` (default its backoff schedule) or dead-lettered. */
  async nack(token: string, options: { delay?: number; error?: string } = {}): Promise<void> {
    assertOptions("nack", options, ["delay", "error"]);
    await this.#settle(token, {
      type: "nack",
      ...(options.delay !== undefined && { delay: options.delay }),
      error: String(options.error ?? "nack"),
    });
  }

  /** Keeps the lease for `ms` more from now. */
  async extend(token: string, ms: number): Promise<void> {
    await this.#settle(token, { type: "extend", ms });
  }

  /** Calls `callback` whenever a message of this queue becomes ready here (enqueue, retry, requeue). */
  onReady(callback: () => void): () => void {
    return this.db.hub.subscribeQueue(this.#id, callback);
  }

  /** Resolves when a message becomes ready, or after `ms`, whichever comes first. */
  waitForReady(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      const unsubscribe = this.onReady(done);
    });
  }

  stats(): Promise<QueueStats> {
    return this.#queue.stats();
  }

  /** The dead-letter queue. */
  get dlq() {
    const handle = this.#queue;
    return {
      list: async (
        options: { limit?: number; after?: string } = {},
      ): Promise<KvDeadMessage<T>[]> => {
        assertOptions("dlq.list", options, ["limit", "after"]);
        const dead = await handle.listDead({
          limit: options.limit ?? 100,
          ...(options.after !== undefined && { after: options.after }),
        });
        return dead.map((m) => decodeDead<T>(m));
      },
      get: async (messageId: string): Promise<KvDeadMessage<T> | null> => {
        const dead = await handle.getDead(messageId);
        return dead ? decodeDead<T>(dead) : null;
      },
      /** Puts dead messages back with fresh deliveries; all of them without ids. */
      requeue: (...ids: string[]): Promise<number> =>
        handle.requeueDead(ids.length > 0 ? ids : null),
      delete: async (...ids: string[]): Promise<number> => {
        if (ids.length === 0)
          fail("INVALID_ARGUMENT", "dlq.delete takes message ids; use dlq.purge() to delete all");
        return handle.deleteDead(ids);
      },
      purge: (): Promise<number> => handle.deleteDead(null),
    };
  }

  /**
   * Delivers messages to `handler` until the database closes or `signal` aborts: a handler that
   * returns acks its message, one that throws nacks it (retried on its schedule, then
   * dead-lettered). Leases are renewed while handlers run.
   */
  async listen(handler: QueueHandler<T>, options: ListenOptions = {}): Promise<void> {
    if (typeof handler !== "function")
      fail("INVALID_ARGUMENT", `listen takes a function, got ${describe(handler)}`);
    assertOptions("listen", options, ["concurrency", "visibilityTimeout", "signal"]);
    const concurrency = options.concurrency ?? 1;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 1000) {
      fail("INVALID_ARGUMENT", "concurrency must be an integer in [1, 1000]");
    }
    const visibilityTimeout = options.visibilityTimeout ?? DEFAULT_VISIBILITY;
    /** Handlers running now; a slot frees when its handler is done, before its settlement commits. */
    let running = 0;
    /** Each delivery until its settlement is stored: listen resolves once all are. */
    const deliveries = new Set<Promise<void>>();
    /** A message may be ready: the queue said so, or the last dequeue filled every free slot. */
    let ready = true;
    let wake: (() => void) | null = null;
    const signalWake = () => wake?.();
    const unsubscribe = this.onReady(() => {
      ready = true;
      signalWake();
    });
    options.signal?.addEventListener("abort", signalWake);
    const active = () => !this.db.closed && !options.signal?.aborted;
    const release = () => {
      running--;
      signalWake();
    };
    try {
      while (active()) {
        const free = concurrency - running;
        if (free > 0 && ready) {
          ready = false;
          const messages = await this.#tryDequeue(free, visibilityTimeout);
          if (messages.length === free) ready = true;
          for (const message of messages) {
            running++;
            const delivery = this.#handle(handler, message, visibilityTimeout, release)
              .catch((error) =>
                warn(`cellar: settling message ${message.id} failed: ${(error as Error).message}`),
              )
              .finally(() => deliveries.delete(delivery));
            deliveries.add(delivery);
          }
          continue;
        }
        const waitMs = free > 0 ? await this.#idleWait() : IDLE_RECHECK;
        if (!active()) break;
        if (ready && running < concurrency) continue;
        const timedOut = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), waitMs);
          wake = () => {
            clearTimeout(timer);
            resolve(false);
          };
        });
        wake = null;
        // A delayed message may be due, or another consumer's lease may have expired.
        if (timedOut) ready = true;
        // Handlers that finish in this turn free their slots together, and their settlements and
        // the dequeue that fills the slots then go to storage in one commit.
        else await afterMicrotasks();
      }
    } finally {
      unsubscribe();
      options.signal?.removeEventListener("abort", signalWake);
      await Promise.allSettled(deliveries);
    }
  }

  /**
   * A dequeue for `listen`: storage that is failing (a lost PostgreSQL server, a full disk) is
   * reported once and tried again on the next round, so a listener outlives an outage.
   */
  async #tryDequeue(limit: number, visibilityTimeout: number): Promise<KvQueueMessage<T>[]> {
    try {
      const messages = await this.dequeueMany(limit, { visibilityTimeout });
      this.#outage = false;
      return messages;
    } catch (error) {
      if (error instanceof KvError && error.code === "DATABASE_CLOSED") return [];
      if (!isOutage(error)) throw error;
      if (!this.#outage)
        warn(`cellar: queue ${this.name}: dequeue failed, retrying: ${error.message}`);
      this.#outage = true;
      return [];
    }
  }

  /** How long to sleep when nothing is ready: until the next delayed message or lease expiry. */
  async #idleWait(): Promise<number> {
    try {
      const { nextAt } = await this.stats();
      return nextAt === null
        ? IDLE_RECHECK
        : Math.max(1, Math.min(IDLE_RECHECK, nextAt - this.db.now()));
    } catch {
      return IDLE_RECHECK;
    }
  }

  /** Runs `handler` on `message`, calls `release` once it is done, then acks or nacks it. */
  async #handle(
    handler: QueueHandler<T>,
    message: KvQueueMessage<T>,
    visibilityTimeout: number,
    release: () => void,
  ): Promise<void> {
    const renew = setInterval(
      () => {
        this.extend(message.token, visibilityTimeout).catch(() => clearInterval(renew));
      },
      Math.max(1, Math.floor(visibilityTimeout / 2)),
    );
    let outcome: { ok: true } | { ok: false; error: unknown };
    try {
      await handler(message.value, message);
      outcome = { ok: true };
    } catch (error) {
      outcome = { ok: false, error };
    } finally {
      clearInterval(renew);
      release();
    }
    try {
      if (outcome.ok) await this.ack(message.token);
      else await this.nack(message.token, { error: errorText(outcome.error) });
    } catch (error) {
      // A lost lease means the message is already being retried; a closed database ends the loop.
      if (!(error instanceof KvError)) throw error;
    }
  }

  async #settle(token: string, settlement: Settlement): Promise<void> {
    const ok = await this.#queue.settle(token, settlement);
    if (!ok) throw new KvError("INVALID_TOKEN", "the lock token is unknown or its lease expired");
  }
}

function errorText(error: unknown): string {
  return (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(
    0,
    1000,
  );
}
