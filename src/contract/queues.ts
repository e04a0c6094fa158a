/**
 * The queue contract, optional: a driver that has it stores messages committed by atomic writes
 * (`AtomicWrite.enqueues`) and leases them to consumers. Without it the core refuses enqueues
 * with `UNSUPPORTED`.
 */
import type { RawValue } from "../codec/value.js";

/**
 * A message to put on a queue. Queues are named by bytes (the core uses the namespace prefix
 * and the encoded queue name), so namespaces isolate queues as they isolate keys.
 */
export interface Enqueue {
  readonly queue: Uint8Array;
  /** Unique id chosen by the caller (a UUIDv7). */
  readonly id: string;
  readonly value: RawValue;
  /** Not delivered before this instant (epoch ms). */
  readonly availableAt: number;
  /** Higher is delivered first; equal priorities are delivered in enqueue order. */
  readonly priority: number;
  /** Delay in ms before each retry; its length is the number of retries, so a message is
   *  delivered at most `backoffSchedule.length + 1` times before it is dead-lettered. */
  readonly backoffSchedule: readonly number[];
  /** Keys that receive the value, atomically with the dead-lettering, if it is never delivered. */
  readonly keysIfUndelivered: readonly Uint8Array[];
  /** While a message with this key enqueued on this queue is younger than `until`, this one is dropped. */
  readonly dedup?: { readonly key: string; readonly until: number };
}

export interface EnqueueResult {
  readonly id: string;
  /** True when an earlier message with the same dedup key made this enqueue a no-op. */
  readonly deduplicated: boolean;
}

/** A message leased to one consumer until `lockedUntil`, settled with its `token`. */
export interface LeasedMessage {
  readonly id: string;
  readonly value: RawValue;
  readonly priority: number;
  /** Deliveries so far, this one included. */
  readonly attempts: number;
  readonly maxAttempts: number;
  readonly enqueuedAt: number;
  readonly token: string;
  readonly lockedUntil: number;
}

export interface DeadMessage {
  readonly id: string;
  readonly value: RawValue;
  readonly priority: number;
  readonly attempts: number;
  readonly enqueuedAt: number;
  readonly failedAt: number;
  /** The last failure: a handler's message, or "lock expired". */
  readonly error: string | null;
}

/**
 * A queue's messages as of `now`. A message whose lease expired counts as the failed delivery it
 * became at `lockedUntil` (pending, delayed while its backoff runs, or dead), never as in flight,
 * whether or not a dequeue has stored that yet.
 */
export interface QueueStats {
  /** Ready for delivery now. */
  readonly pending: number;
  /** Waiting for their delay or a retry's backoff. */
  readonly delayed: number;
  /** Leased to a consumer, lease not expired. */
  readonly inFlight: number;
  /** In the dead-letter queue. */
  readonly dead: number;
  /** The earliest instant a delayed message becomes ready or a lease expires, if any. */
  readonly nextAt: number | null;
}

/**
 * How a consumer settles a leased message:
 * - `ack`: done, the message is deleted;
 * - `nack`: failed; retried after `delay` (default: its backoff schedule) or dead-lettered when
 *   its deliveries are used up;
 * - `extend`: keep the lease for `ms` more from now.
 */
export type Settlement =
  | { readonly type: "ack" }
  | { readonly type: "nack"; readonly delay?: number; readonly error?: string }
  | { readonly type: "extend"; readonly ms: number };

/** Leasing and settling messages, and the dead-letter queue. */
export interface KvQueueStore {
  /**
   * Leases up to `limit` ready messages of `queue` for `visibilityTimeout` ms, highest priority
   * first, then oldest. A lease that expired first counts as a failed delivery at `lockedUntil`:
   * the message is ready once its backoff has run from that instant, or dead-lettered (failed at
   * that instant, its `keysIfUndelivered` written now) when its deliveries are used up. Two
   * callers never hold the same message at once.
   */
  dequeue(
    queue: Uint8Array,
    options: { now: number; visibilityTimeout: number; limit: number },
  ): Promise<LeasedMessage[]>;

  /** Settles a leased message. False when `token` is unknown or its lease already expired. */
  settle(queue: Uint8Array, token: string, settlement: Settlement, now: number): Promise<boolean>;

  queueStats(queue: Uint8Array, now: number): Promise<QueueStats>;

  /** Dead messages, oldest failure first, after the message `after` (an id) when given. */
  listDead(queue: Uint8Array, options: { limit: number; after?: string }): Promise<DeadMessage[]>;

  getDead(queue: Uint8Array, id: string): Promise<DeadMessage | null>;

  /** Puts dead messages (all when `ids` is null) back on the queue with fresh deliveries. */
  requeueDead(queue: Uint8Array, ids: readonly string[] | null, now: number): Promise<number>;

  /** Deletes dead messages (all when `ids` is null). */
  deleteDead(queue: Uint8Array, ids: readonly string[] | null): Promise<number>;

  /**
   * The names of the queues in `[start, end)` (byte order, as keys) that hold any message:
   * ready, delayed, leased or dead; at most `limit`, in byte order. Optional: without it, listing
   * queues answers `UNSUPPORTED`.
   */
  listQueues?(range: { start: Uint8Array; end: Uint8Array }, limit: number): Promise<Uint8Array[]>;
}
