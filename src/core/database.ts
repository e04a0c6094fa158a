/**
 * The state every view of one database shares: its driver, limits, clock, watch hub and expiry
 * sweeper. `Kv` objects (the root and each namespace) are thin views over one `Database`.
 */
import { encodeKey, type KvKey, startsWith } from "../codec/key.js";
import { KvU64 } from "../codec/u64.js";
import { encodeValue, type RawValue, rawSize } from "../codec/value.js";
import type { KvDriver } from "../contract/index.js";
import { describe, fail, KvError } from "../errors.js";
import type { KvLimits } from "./limits.js";
import { WatchHub } from "./watch.js";

export interface HistoryOptions {
  /** Revisions kept per key (default 10). */
  readonly depth?: number;
  /** Key prefixes whose revisions keep the written values, for audit and undo. */
  readonly keepValues?: readonly KvKey[];
}

export interface DatabaseOptions {
  readonly limits: KvLimits;
  readonly clock: () => number;
  readonly history?: HistoryOptions;
  /** Milliseconds between expiry sweeps; 0 disables the sweeper (reads still hide expired entries). */
  readonly sweepInterval: number;
}

const SWEEP_BATCH = 1000;

export class Database {
  readonly hub: WatchHub;
  readonly limits: KvLimits;
  readonly now: () => number;
  #closed = false;
  #closing: Promise<void> | null = null;
  #sweeper: NodeJS.Timeout | null = null;
  readonly #keepValues: Uint8Array[];

  constructor(
    readonly driver: KvDriver,
    options: DatabaseOptions,
  ) {
    this.limits = options.limits;
    this.now = options.clock;
    this.hub = new WatchHub(driver);
    this.#keepValues = (options.history?.keepValues ?? []).map((prefix) => encodeKey(prefix));
    if (options.sweepInterval > 0) {
      this.#sweeper = setInterval(() => this.#sweepInBackground(), options.sweepInterval);
      this.#sweeper.unref();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  assertOpen(): void {
    if (this.#closed) throw new KvError("DATABASE_CLOSED", "the database is closed");
  }

  #sweeping = false;

  /** A timer's sweep: never two at once, and a failure (say, a file locked by another process) waits for the next tick. */
  #sweepInBackground(): void {
    if (this.#sweeping) return;
    this.#sweeping = true;
    this.sweep()
      .catch((error) =>
        process.emitWarning(`cellar: expiry sweep failed: ${(error as Error).message}`),
      )
      .finally(() => {
        this.#sweeping = false;
      });
  }

  /** Deletes expired entries, a batch at a time, until none is left. */
  async sweep(): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        if (this.#closed) return total;
        const n = await this.driver.deleteExpired(this.now(), SWEEP_BATCH);
        total += n;
        if (n < SWEEP_BATCH) return total;
      }
    } catch (error) {
      if (error instanceof KvError && error.code === "DATABASE_CLOSED") return total;
      throw error;
    }
  }

  /** Encodes a value and enforces the size limit. */
  encodeValue(value: unknown): RawValue {
    const raw = encodeValue(value);
    const size = rawSize(raw);
    if (size > this.limits.maxValueSize) {
      fail(
        "VALUE_TOO_LARGE",
        `value is ${size} bytes encoded; the limit is ${this.limits.maxValueSize}`,
      );
    }
    return raw;
  }

  /** Whether writes to this key (its bytes without the namespace) keep values in history. */
  keepsValues(userKey: Uint8Array): boolean {
    for (const prefix of this.#keepValues) if (startsWith(userKey, prefix)) return true;
    return false;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      if (this.#sweeper) clearInterval(this.#sweeper);
      this.hub.close();
      await this.driver.close();
    })();
    return this.#closing;
  }
}

/** Operand of `sum`/`min`/`max`: a `KvU64` or a bigint in its range. */
export function u64Operand(type: string, value: unknown): bigint {
  if (value instanceof KvU64) return value.value;
  if (typeof value === "bigint") return new KvU64(value).value;
  fail("INVALID_MUTATION", `'${type}' takes a KvU64 or a bigint, got ${describe(value)}`);
}

/** Items of `append`/`prepend`: an array, stored encoded. */
export function arrayOperand(db: Database, type: string, items: unknown): RawValue {
  if (!Array.isArray(items))
    fail("INVALID_MUTATION", `'${type}' takes an array of items, got ${describe(items)}`);
  return db.encodeValue(items);
}
