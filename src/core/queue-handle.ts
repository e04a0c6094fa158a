/**
 * One queue of a database as the core's surface offers it: every call is checked here, once,
 * whichever face makes it (`kv.queue(name)`, the HTTP queue routes, the driver protocol), and
 * carries the core's clock unless the caller passes its own `now`.
 */
import type {
  DeadMessage,
  KvQueueStore,
  LeasedMessage,
  QueueStats,
  Settlement,
} from "../contract/index.js";
import { describe, fail } from "../errors.js";
import { MAX_DELAY } from "./commit.js";
import { type KvOperationName, keyOperation, type Observers } from "./observe.js";

/** The most messages one dequeue or one page of dead letters returns. */
export const MAX_QUEUE_PAGE = 1000;
const MAX_TOKEN = 128;
const MAX_ERROR_TEXT = 1000;

interface Clock {
  now(): number;
  assertOpen(): void;
  readonly observers: Observers;
}

function assertPage(limit: unknown): asserts limit is number {
  if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_QUEUE_PAGE)
    fail(
      "INVALID_ARGUMENT",
      `limit must be an integer in [1, ${MAX_QUEUE_PAGE}], got ${describe(limit)}`,
    );
}

function assertDuration(what: string, ms: unknown, min: number): asserts ms is number {
  if (!Number.isSafeInteger(ms) || (ms as number) < min || (ms as number) > MAX_DELAY) {
    fail(
      "INVALID_ARGUMENT",
      `${what} must be an integer of milliseconds in [${min}, ${MAX_DELAY}], got ${describe(ms)}`,
    );
  }
}

/** Checks a settlement's fields; a nack's error text is cut to 1000 characters. */
function checkedSettlement(settlement: Settlement): Settlement {
  switch (settlement?.type) {
    case "ack":
      return { type: "ack" };
    case "extend":
      assertDuration("ms", settlement.ms, 1);
      return { type: "extend", ms: settlement.ms };
    case "nack":
      if (settlement.delay !== undefined) assertDuration("delay", settlement.delay, 0);
      return {
        type: "nack",
        ...(settlement.delay !== undefined && { delay: settlement.delay }),
        ...(settlement.error !== undefined && {
          error: String(settlement.error).slice(0, MAX_ERROR_TEXT),
        }),
      };
    default:
      fail("INVALID_ARGUMENT", `a settlement is ack, nack or extend, got ${describe(settlement)}`);
  }
}

export class QueueHandle {
  constructor(
    private readonly clock: Clock,
    private readonly store: KvQueueStore,
    readonly id: Uint8Array,
  ) {}

  dequeue(options: {
    visibilityTimeout: number;
    limit: number;
    now?: number;
  }): Promise<LeasedMessage[]> {
    return this.#observed("dequeue", () => this.#dequeue(options));
  }

  #dequeue(options: {
    visibilityTimeout: number;
    limit: number;
    now?: number;
  }): Promise<LeasedMessage[]> {
    this.clock.assertOpen();
    assertDuration("visibilityTimeout", options.visibilityTimeout, 1);
    assertPage(options.limit);
    return this.store.dequeue(this.id, {
      now: options.now ?? this.clock.now(),
      visibilityTimeout: options.visibilityTimeout,
      limit: options.limit,
    });
  }

  /** False when `token` is unknown or its lease expired. */
  settle(token: string, settlement: Settlement, now?: number): Promise<boolean> {
    const op =
      settlement?.type === "nack" || settlement?.type === "extend" ? settlement.type : "ack";
    return this.#observed(
      op,
      () => this.#settle(token, settlement, now),
      (settled) => (settled ? undefined : "INVALID_TOKEN"),
    );
  }

  #settle(token: string, settlement: Settlement, now?: number): Promise<boolean> {
    this.clock.assertOpen();
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN) {
      fail(
        "INVALID_TOKEN",
        `a lock token is the string a dequeue returned, got ${describe(token)}`,
      );
    }
    return this.store.settle(
      this.id,
      token,
      checkedSettlement(settlement),
      now ?? this.clock.now(),
    );
  }

  stats(now?: number): Promise<QueueStats> {
    return this.#observed("queueStats", () => {
      this.clock.assertOpen();
      return this.store.queueStats(this.id, now ?? this.clock.now());
    });
  }

  listDead(options: { limit: number; after?: string }): Promise<DeadMessage[]> {
    return this.#observed("listDead", () => {
      this.clock.assertOpen();
      assertPage(options.limit);
      return this.store.listDead(this.id, options);
    });
  }

  getDead(id: string): Promise<DeadMessage | null> {
    return this.#observed("getDead", () => {
      this.clock.assertOpen();
      return this.store.getDead(this.id, id);
    });
  }

  /** Puts dead messages (all when `ids` is null) back with fresh deliveries. */
  requeueDead(ids: readonly string[] | null, now?: number): Promise<number> {
    return this.#observed("requeueDead", () => {
      this.clock.assertOpen();
      return this.store.requeueDead(this.id, ids, now ?? this.clock.now());
    });
  }

  deleteDead(ids: readonly string[] | null): Promise<number> {
    return this.#observed("deleteDead", () => {
      this.clock.assertOpen();
      return this.store.deleteDead(this.id, ids);
    });
  }

  /** Runs `run` as operation `op` of this queue (see `observe.ts`). */
  #observed<T>(
    op: KvOperationName,
    run: () => Promise<T>,
    failed?: (result: T) => "INVALID_TOKEN" | undefined,
  ): Promise<T> {
    const { observers } = this.clock;
    if (observers.size === 0) return run();
    return observers.observe(keyOperation(op, this.id, null), run, failed);
  }
}
