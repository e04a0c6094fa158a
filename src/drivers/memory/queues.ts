/**
 * The memory driver's queues: per queue, a B+ tree of ready messages ordered by priority then
 * enqueue order, leased messages by token, and the dead-letter queue by id.
 */

import { BTree } from "../../codec/btree.js";
import type {
  DeadMessage,
  Enqueue,
  EnqueueResult,
  LeasedMessage,
  Mutation,
  QueueStats,
  Settlement,
} from "../../contract/index.js";
import {
  afterExpiry,
  effectiveState,
  holdsLease,
  lease,
  leaseExpired,
  newMessage,
  revive,
  type StoredMessage,
  settled,
  toDead,
  toLeased,
  undeliveredMutations,
} from "../shared/queue-states.js";

type ReadyKey = [negPriority: number, seq: number];

class QueueState {
  readonly ready = new BTree<ReadyKey, StoredMessage>(
    undefined,
    (a, b) => a[0] - b[0] || a[1] - b[1],
  );
  readonly leased = new Map<string, StoredMessage>();
  readonly dead = new Map<string, StoredMessage>();
  readonly dedup = new Map<string, { id: string; until: number }>();

  putReady(message: StoredMessage): void {
    this.ready.set([-message.priority, message.seq], message);
  }
}

export class MemoryQueues {
  readonly #queues = new Map<string, QueueState>();
  #seq = 0;

  /**
   * @param commit applies key mutations as one commit (for values of undelivered messages)
   * @param ready reports a queue that has a message ready for delivery
   */
  constructor(
    private readonly commit: (mutations: Mutation[], now: number) => void,
    private readonly ready: (queue: string) => void,
  ) {}

  /** The id of an earlier message holding this enqueue's dedup key, if its window is open. */
  #duplicateOf(queueId: string, enqueue: Enqueue, now: number): string | null {
    if (!enqueue.dedup) return null;
    const seen = this.#queues.get(queueId)?.dedup.get(enqueue.dedup.key);
    return seen && seen.until > now ? seen.id : null;
  }

  enqueue(queueId: string, enqueue: Enqueue, now: number): EnqueueResult {
    const duplicate = this.#duplicateOf(queueId, enqueue, now);
    if (duplicate !== null) return { id: duplicate, deduplicated: true };
    const state = this.#state(queueId);
    if (enqueue.dedup)
      state.dedup.set(enqueue.dedup.key, { id: enqueue.id, until: enqueue.dedup.until });
    state.putReady(newMessage(enqueue, ++this.#seq, now));
    this.ready(queueId);
    return { id: enqueue.id, deduplicated: false };
  }

  dequeue(queueId: string, now: number, visibilityTimeout: number, limit: number): LeasedMessage[] {
    const state = this.#queues.get(queueId);
    if (!state) return [];
    this.#reclaim(queueId, state, now);
    const picked: StoredMessage[] = [];
    for (const [, message] of state.ready.entries()) {
      if (picked.length >= limit) break;
      if (message.availableAt <= now) picked.push(message);
    }
    return picked.map((message) => {
      state.ready.delete([-message.priority, message.seq]);
      const leased = lease(message, now, visibilityTimeout);
      state.leased.set(leased.token!, leased);
      return toLeased(leased);
    });
  }

  settle(queueId: string, token: string, settlement: Settlement, now: number): boolean {
    const state = this.#queues.get(queueId);
    const message = state?.leased.get(token);
    if (!state || !message || !holdsLease(message, token, now)) return false;
    const next = settled(message, settlement, now);
    if (next?.state === "leased") state.leased.set(token, next);
    else state.leased.delete(token);
    if (next && next.state !== "leased") this.#putFailed(queueId, state, next, now);
    return true;
  }

  stats(queueId: string, now: number): QueueStats {
    const state = this.#queues.get(queueId);
    if (!state) return { pending: 0, delayed: 0, inFlight: 0, dead: 0, nextAt: null };
    let pending = 0;
    let delayed = 0;
    let inFlight = 0;
    let dead = state.dead.size;
    let nextAt: number | null = null;
    const consider = (at: number) => {
      if (nextAt === null || at < nextAt) nextAt = at;
    };
    const count = (message: StoredMessage) => {
      if (message.state === "dead") dead++;
      else if (message.state === "leased") {
        inFlight++;
        consider(message.lockedUntil!);
      } else if (message.availableAt <= now) pending++;
      else {
        delayed++;
        consider(message.availableAt);
      }
    };
    for (const [, message] of state.ready.entries()) count(message);
    for (const message of state.leased.values()) count(effectiveState(message, now));
    return { pending, delayed, inFlight, dead, nextAt };
  }

  /** Forgets dedup keys whose window has passed. */
  pruneDedup(now: number): void {
    for (const state of this.#queues.values()) {
      for (const [key, seen] of state.dedup) if (seen.until <= now) state.dedup.delete(key);
    }
  }

  /** Forgets every queue whose id starts with `prefixId`: its messages and dedup keys. */
  purge(prefixId: string): void {
    for (const queueId of this.#queues.keys())
      if (queueId.startsWith(prefixId)) this.#queues.delete(queueId);
  }

  listDead(queueId: string, limit: number, after?: string): DeadMessage[] {
    const dead = [...(this.#queues.get(queueId)?.dead.values() ?? [])];
    const start = after === undefined ? 0 : dead.findIndex((m) => m.id === after) + 1;
    return dead.slice(start, start + limit).map(toDead);
  }

  getDead(queueId: string, id: string): DeadMessage | null {
    const message = this.#queues.get(queueId)?.dead.get(id);
    return message ? toDead(message) : null;
  }

  requeueDead(queueId: string, ids: readonly string[] | null, now: number): number {
    const state = this.#queues.get(queueId);
    if (!state) return 0;
    let n = 0;
    for (const id of ids ?? [...state.dead.keys()]) {
      const message = state.dead.get(id);
      if (!message) continue;
      state.dead.delete(id);
      state.putReady(revive(message, now));
      n++;
    }
    if (n > 0) this.ready(queueId);
    return n;
  }

  deleteDead(queueId: string, ids: readonly string[] | null): number {
    const state = this.#queues.get(queueId);
    if (!state) return 0;
    if (ids === null) {
      const n = state.dead.size;
      state.dead.clear();
      return n;
    }
    return ids.filter((id) => state.dead.delete(id)).length;
  }

  /** Expired leases count as failed deliveries, as of their expiry. */
  #reclaim(queueId: string, state: QueueState, now: number): void {
    for (const [token, message] of state.leased) {
      if (!leaseExpired(message, now)) continue;
      state.leased.delete(token);
      this.#putFailed(queueId, state, afterExpiry(message), now);
    }
  }

  /** Stores a message after a failed delivery; `now` is when that is recorded. */
  #putFailed(queueId: string, state: QueueState, next: StoredMessage, now: number): void {
    if (next.state === "dead") {
      state.dead.set(next.id, next);
      const mutations = undeliveredMutations(next);
      if (mutations.length > 0) this.commit(mutations, now);
    } else {
      state.putReady(next);
      this.ready(queueId);
    }
  }

  #state(queueId: string): QueueState {
    const state = this.#queues.get(queueId) ?? new QueueState();
    this.#queues.set(queueId, state);
    return state;
  }

  /** Ids of the queues in `[start, end)` holding any message, in order, at most `limit`. */
  names(start: string, end: string, limit: number): string[] {
    return [...this.#queues]
      .filter(
        ([id, q]) => id >= start && id < end && q.ready.size + q.leased.size + q.dead.size > 0,
      )
      .map(([id]) => id)
      .sort()
      .slice(0, limit);
  }
}
