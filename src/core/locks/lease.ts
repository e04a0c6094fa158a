/**
 * Leases: `kv.lock(name)` takes a named lock of a namespace for `ttl` milliseconds and, while its
 * holder lives, renews it every third of that. Taking it is one atomic commit that requires the
 * lock's entry to be absent (an expired entry is absent) and writes it with `expireIn: ttl`; that
 * commit's versionstamp is the lock's fencing token, so tokens grow with every acquisition of any
 * lock of the database. Renewing and releasing are commits checked against the versionstamp the
 * holder last wrote, so they never touch an entry that is no longer the holder's.
 *
 * A lease only says who should be working: a paused holder keeps believing it holds a lock that
 * expired. What makes writes safe is the fence (`fence.ts`), checked by the storage at commit.
 */
import { uuidv7 } from "uuidv7";
import type { Mutation } from "../../contract/index.js";
import { describe, fail, KvError } from "../../errors.js";
import type { Database } from "../database.js";
import type { Keyspace } from "../keyspace.js";
import { assertOptions } from "../limits.js";
import { unref } from "../timers.js";
import {
  assertLockName,
  type LockRecord,
  lockHeld,
  lockKeyspace,
  readLock,
  tokenOf,
} from "./record.js";
import { waitForLock } from "./wait.js";

const DEFAULT_TTL = 30_000;
/** `setTimeout`'s longest delay: a longer one fires at once, so no ttl or wait may exceed it. */
const MAX_TIMER = 2_147_483_647;
/** Writes a holder tries when its previous write landed but its answer was lost. */
const OWN_ATTEMPTS = 3;

/** Options of `kv.lock()` and `kv.withLock()`. */
export interface KvLockOptions {
  /** How long the lease lasts without a renewal, in milliseconds (default 30 000). */
  readonly ttl?: number;
  /**
   * How long to wait for a lock someone else holds, in milliseconds, before failing with
   * `LOCK_HELD`; 0 (the default) fails at once.
   */
  readonly wait?: number;
  /** Renew the lease every third of `ttl` while it is held (default true). */
  readonly renew?: boolean;
}

/**
 * A held lock, from `kv.lock()`. `token` is its fencing token: pass the lock (or
 * `{ name, token }`) to `atomic().checkLock()` so that a write commits only while the lease is
 * still this holder's.
 *
 * @example
 * await using lock = await kv.lock("nightly-report", { ttl: 10_000 });
 * const res = await kv.atomic().checkLock(lock).set(["report"], report).commit();
 */
export interface KvLock extends AsyncDisposable {
  readonly name: string;
  /**
   * The versionstamp of the commit that took the lock: greater than the token of every earlier
   * acquisition of any lock of this database. It stays the same across renewals.
   */
  readonly token: string;
  /**
   * Whether this holder still believes it holds the lock: not released, no renewal found it
   * taken, and its lease has not run out on this process's clock. Only a fenced commit knows.
   */
  readonly held: boolean;
  /** Aborted once the lock is no longer held: lost (with a `LOCK_LOST` reason) or released. */
  readonly signal: AbortSignal;
  /**
   * Gives the lock up: deletes its entry if it is still this holder's. Releasing a lock already
   * lost or released does nothing.
   */
  release(): Promise<void>;
  /** Renews the lease now, for `ttl` from now; rejects with `LOCK_LOST` if it was lost. */
  renew(): Promise<void>;
}

/** What a fence needs of a handle (see `fence.ts`): the database and the entry it last wrote. */
export interface HeldLock {
  readonly db: Database;
  readonly keyspace: Keyspace;
  readonly name: string;
  readonly token: string;
  versionstamp(): string;
}

const handles = new WeakMap<object, HeldLock>();

/** The handle behind `lock` when it came from `kv.lock()`, else undefined. */
export function heldLock(lock: unknown): HeldLock | undefined {
  return typeof lock === "object" && lock !== null ? handles.get(lock) : undefined;
}

interface HandleInit {
  readonly db: Database;
  readonly keyspace: Keyspace;
  readonly name: string;
  readonly holder: string;
  readonly ttl: number;
  readonly renew: boolean;
  readonly versionstamp: string;
  readonly expiresAt: number;
}

class LockHandle implements KvLock {
  readonly name: string;
  readonly token: string;
  readonly #db: Database;
  readonly #keyspace: Keyspace;
  readonly #key: Uint8Array;
  readonly #holder: string;
  readonly #ttl: number;
  readonly #autoRenew: boolean;
  readonly #controller = new AbortController();
  #versionstamp: string;
  #expiresAt: number;
  #state: "held" | "released" | "lost" = "held";
  #renewing: Promise<void> | null = null;
  #renewTimer: ReturnType<typeof setTimeout> | null = null;
  #expiryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(init: HandleInit) {
    this.name = init.name;
    this.token = init.versionstamp;
    this.#db = init.db;
    this.#keyspace = init.keyspace;
    this.#key = init.keyspace.encode([init.name]);
    this.#holder = init.holder;
    this.#ttl = init.ttl;
    this.#autoRenew = init.renew;
    this.#versionstamp = init.versionstamp;
    this.#expiresAt = init.expiresAt;
    handles.set(this, {
      db: init.db,
      keyspace: init.keyspace,
      name: init.name,
      token: this.token,
      versionstamp: () => this.#versionstamp,
    });
    this.#armTimers();
  }

  get held(): boolean {
    return this.#state === "held" && !this.#db.closed && this.#db.now() < this.#expiresAt;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  renew(): Promise<void> {
    // Concurrent calls share one renewal: two would check the same versionstamp, and one fail.
    this.#renewing ??= this.#renewOnce().finally(() => {
      this.#renewing = null;
    });
    return this.#renewing;
  }

  async release(): Promise<void> {
    if (this.#state !== "held") return;
    // Marked first, so that no renewal starts or re-arms a timer from here on.
    this.#state = "released";
    this.#stopTimers();
    this.#controller.abort(
      new KvError("LOCK_LOST", `lock ${JSON.stringify(this.name)} was released`),
    );
    await this.#renewing?.catch(() => {});
    // A closed database cannot delete the entry; the lease runs out on its own.
    if (this.#db.closed) return;
    await this.#writeOwn(() => ({ type: "delete", key: this.#key }));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  async #renewOnce(): Promise<void> {
    if (this.#state !== "held") throw this.#lostError();
    const record: LockRecord = { holder: this.#holder, token: this.token };
    const value = this.#db.encodeValue(record);
    let written: { versionstamp: string; now: number } | null;
    try {
      written = await this.#writeOwn((now) => ({
        type: "set",
        key: this.#key,
        value,
        expiresAt: now + this.#ttl,
      }));
    } catch (error) {
      if (error instanceof KvError && error.code === "DATABASE_CLOSED")
        this.#lose("its database closed");
      throw error;
    }
    if (!written) {
      this.#lose("its lease ran out or another holder took it");
      throw this.#lostError();
    }
    // Recorded even when the lock was released meanwhile: the release deletes this entry.
    this.#versionstamp = written.versionstamp;
    if (this.#state !== "held") throw this.#lostError();
    this.#expiresAt = written.now + this.#ttl;
    this.#armTimers();
  }

  /**
   * Commits `mutation` of the lock's entry if the entry is still the one this handle last wrote.
   * When that check fails but the entry still carries this lock's token, an earlier write of
   * this handle landed though its answer was lost (a dropped connection): go on from it.
   * Resolves `null` when the entry is gone or another holder's.
   */
  async #writeOwn(
    mutation: (now: number) => Mutation,
  ): Promise<{ versionstamp: string; now: number } | null> {
    for (let attempt = 0; attempt < OWN_ATTEMPTS; attempt++) {
      const now = this.#db.now();
      const result = await this.#db.commit(
        {
          checks: [{ key: this.#key, versionstamp: this.#versionstamp }],
          mutations: [mutation(now)],
        },
        this.#keyspace,
        now,
      );
      if (result) return { versionstamp: result.versionstamp, now };
      const current = await readLock(this.#db, this.#keyspace, this.name);
      if (
        !current ||
        tokenOf(current) !== this.token ||
        current.versionstamp === this.#versionstamp
      )
        return null;
      this.#versionstamp = current.versionstamp;
    }
    return null;
  }

  #armTimers(): void {
    this.#stopTimers();
    const left = Math.max(0, this.#expiresAt - this.#db.now());
    this.#expiryTimer = setTimeout(() => this.#lose("its lease ran out before a renewal"), left);
    unref(this.#expiryTimer);
    if (this.#autoRenew) this.#scheduleRenewal(Math.max(1, Math.floor(this.#ttl / 3)));
  }

  #scheduleRenewal(delay: number): void {
    this.#renewTimer = setTimeout(() => {
      this.renew().catch(() => {
        // An outage (or a closed database, which loses the lock): try again while the lease
        // lasts; the expiry timer ends it.
        if (this.#state === "held") this.#scheduleRenewal(Math.max(1, Math.floor(this.#ttl / 10)));
      });
    }, delay);
    unref(this.#renewTimer);
  }

  #stopTimers(): void {
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#renewTimer = this.#expiryTimer = null;
  }

  #lose(reason: string): void {
    if (this.#state !== "held") return;
    this.#state = "lost";
    this.#stopTimers();
    this.#controller.abort(this.#lostError(reason));
  }

  /** The error of a lost (or released) lock: the signal's reason once it is aborted. */
  #lostError(reason = "it is no longer held"): KvError {
    if (this.#controller.signal.aborted) return this.#controller.signal.reason as KvError;
    return new KvError("LOCK_LOST", `lock ${JSON.stringify(this.name)} was lost: ${reason}`);
  }
}

/**
 * Takes lock `name` of the namespace `namespace` (see `kv.lock()`), waiting up to
 * `options.wait` ms for its holder to release it or for its lease to run out.
 */
export async function acquireLock(
  db: Database,
  namespace: string,
  name: unknown,
  options: KvLockOptions = {},
): Promise<KvLock> {
  db.assertOpen();
  assertLockName(name);
  assertOptions("lock", options, ["ttl", "wait", "renew"]);
  const ttl = options.ttl ?? DEFAULT_TTL;
  const wait = options.wait ?? 0;
  assertMilliseconds("ttl", ttl, 1);
  assertMilliseconds("wait", wait, 0);
  if (options.renew !== undefined && typeof options.renew !== "boolean")
    fail("INVALID_ARGUMENT", `renew must be a boolean, got ${describe(options.renew)}`);
  const keyspace = lockKeyspace(db, namespace);
  const key = keyspace.encode([name]);
  const holder = uuidv7();
  const record: LockRecord = { holder };
  const value = db.encodeValue(record);
  const attempt = async (): Promise<KvLock | null> => {
    const now = db.now();
    const result = await db.commit(
      {
        checks: [{ key, versionstamp: null }],
        mutations: [{ type: "set", key, value, expiresAt: now + ttl }],
      },
      keyspace,
      now,
    );
    if (!result) return null;
    return new LockHandle({
      db,
      keyspace,
      name,
      holder,
      ttl,
      renew: options.renew !== false,
      versionstamp: result.versionstamp,
      expiresAt: now + ttl,
    });
  };
  const lock = await attempt();
  if (lock) return lock;
  if (wait === 0) throw lockHeld(name, 0);
  return waitForLock(db, keyspace, name, wait, attempt);
}

/**
 * Runs `fn` while holding lock `name` (see `kv.withLock()`), and releases it after, whether `fn`
 * returned or threw.
 */
export async function runWithLock<R>(
  db: Database,
  namespace: string,
  name: unknown,
  fn: (lock: KvLock) => R | Promise<R>,
  options?: KvLockOptions,
): Promise<R> {
  if (typeof fn !== "function")
    fail("INVALID_ARGUMENT", `withLock takes a function, got ${describe(fn)}`);
  const lock = await acquireLock(db, namespace, name, options);
  let result: R;
  try {
    result = await fn(lock);
  } catch (error) {
    // The callback's error is the one to report; a failed release only leaves the lease to run out.
    await lock.release().catch(() => {});
    throw error;
  }
  await lock.release();
  return result;
}

function assertMilliseconds(field: string, value: unknown, min: number): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > MAX_TIMER)
    fail(
      "INVALID_ARGUMENT",
      `${field} must be an integer of milliseconds in [${min}, ${MAX_TIMER}], got ${describe(value)}`,
    );
}
