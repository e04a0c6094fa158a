/**
 * Optimistic transactions. Inside the callback every read is recorded and becomes a
 * versionstamp check of the final commit; writes are buffered and visible to later reads of the
 * same transaction. When a check fails at commit (another writer got there first) the callback
 * runs again on fresh reads, after an exponential backoff with full jitter.
 */
import { compareBytes, concatBytes, type KvKey, keyId } from "../codec/key.js";
import type { KvU64 } from "../codec/u64.js";
import { decodeValue } from "../codec/value.js";
import { applyMutation, isLive, type StoredEntry } from "../contract/apply.js";
import type { Check, Enqueue, Mutation, RangeCheck, RawEntry } from "../contract/index.js";
import { describe, fail, KvError } from "../errors.js";
import { arrayOperand, type Database, numericOperand } from "./database.js";
import type { Keyspace } from "./keyspace.js";
import {
  assertOptions,
  assertPositiveInteger,
  expiryFrom,
  SET_OPTIONS,
  writeInfoFrom,
} from "./limits.js";
import { resolveSelector } from "./list.js";
import { type Fence, fenceOf, fenceWrite, type KvLock, type KvLockFence } from "./locks/index.js";
import { buildCommitEnqueue, type KvEnqueueOptions } from "./queue.js";
import type { KvListSelector, KvSetOptions, KvWriteInfo } from "./types.js";

const MAX_LIST = 1000;

export interface KvTransactionOptions {
  /** Attempts after the first, on conflict (default 10). */
  readonly maxRetries?: number;
  readonly backoff?: {
    /** Upper bound of the first delay in ms (default 5). */
    readonly initialMs?: number;
    /** Cap of any delay in ms (default 1000). */
    readonly maxMs?: number;
  };
}

export type KvTransactionResult<R> =
  | { readonly ok: true; readonly value: R; readonly versionstamp: string }
  | { readonly ok: false; readonly error: unknown };

/** What a transaction's reads return; a key written earlier in the transaction has no versionstamp yet. */
export interface KvTransactionEntry<T = unknown> {
  readonly key: KvKey;
  readonly value: T | null;
  readonly versionstamp: string | null;
}

interface KeyState {
  /** The stored key. */
  readonly key: Uint8Array;
  /** What the database held when first read; undefined until read. */
  base?: StoredEntry | null;
  /** Mutations of this transaction not yet folded into a known state. */
  pending: Mutation[];
  /** The state after this transaction's writes, once known. */
  current?: StoredEntry | null;
  written: boolean;
}

export class KvTransaction {
  readonly #keys = new Map<string, KeyState>();
  readonly #checks = new Map<string, Check>();
  readonly #rangeChecks: RangeCheck[] = [];
  readonly #mutations: Mutation[] = [];
  readonly #enqueues: Enqueue[] = [];
  readonly #fences: Fence[] = [];

  constructor(
    private readonly db: Database,
    private readonly keyspace: Keyspace,
  ) {}

  async get<T = unknown>(key: KvKey): Promise<KvTransactionEntry<T>> {
    const [entry] = await this.getMany<[T]>([key]);
    return entry;
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly KvKey[],
  ): Promise<{ [K in keyof T]: KvTransactionEntry<T[K]> }> {
    const encoded = keys.map((key) => this.keyspace.encode(key));
    const missing = encoded.filter((bytes) => this.#keys.get(keyId(bytes))?.base === undefined);
    if (missing.length > 0) {
      const now = this.db.now();
      const results = await this.db.read(
        missing.map((start) => ({
          start,
          end: concatBytes(start, 0),
          limit: 1,
          reverse: false,
        })),
        this.keyspace,
        { now, metadata: true },
      );
      missing.forEach((bytes, i) => {
        this.#recordBase(bytes, results[i]?.[0], now);
      });
    }
    return encoded.map((bytes, i) => this.#entry(bytes, keys[i]!)) as {
      [K in keyof T]: KvTransactionEntry<T[K]>;
    };
  }

  /**
   * Reads a range as `kv.list` would (up to `limit` entries, default 100, at most 1000), with this
   * transaction's own writes applied. The read is tracked: the commit fails, and the transaction
   * runs again, if any key in the part of the range it saw was written, added or deleted since.
   *
   * @example
   * await kv.transaction(async (tx) => {
   *   const open = await tx.list<Order>({ prefix: ["orders"] });
   *   if (open.length < 10) tx.set(["orders", id], order);
   * });
   */
  async list<T = unknown>(
    selector: KvListSelector,
    options: { limit?: number; reverse?: boolean } = {},
  ): Promise<KvTransactionEntry<T>[]> {
    assertOptions("list", options, ["limit", "reverse"]);
    assertPositiveInteger("limit", options.limit, MAX_LIST);
    const limit = options.limit ?? 100;
    const reverse = options.reverse === true;
    const { start, end } = resolveSelector(selector, this.keyspace);
    const inRange = (key: Uint8Array) =>
      compareBytes(key, start) >= 0 && compareBytes(key, end) < 0;
    const written = [...this.#keys.values()].filter((s) => s.written && inRange(s.key));
    // This transaction's deletes may hide stored entries: read enough to fill the page anyway.
    const wanted = limit + written.length;
    const now = this.db.now();
    const [raws = []] = await this.db.read(
      [{ start, end, limit: wanted, reverse }],
      this.keyspace,
      { now, metadata: true },
    );
    for (const raw of raws) {
      if (this.#keys.get(keyId(raw.key))?.base === undefined) this.#recordBase(raw.key, raw, now);
    }
    const last = raws.at(-1);
    const seen =
      raws.length < wanted || !last
        ? { start, end }
        : reverse
          ? { start: last.key, end }
          : { start, end: concatBytes(last.key, 0) };
    this.#rangeChecks.push({ ...seen, count: raws.length });
    // Written keys never read need their stored state before their pending writes apply.
    const unread = written.filter((s) => s.base === undefined && s.current === undefined);
    if (unread.length > 0) await this.getMany(unread.map((s) => this.keyspace.decode(s.key)));
    const keys = new Map<string, Uint8Array>();
    for (const raw of raws) keys.set(keyId(raw.key), raw.key);
    for (const s of written) keys.set(keyId(s.key), s.key);
    const ordered = [...keys.values()].sort(compareBytes);
    if (reverse) ordered.reverse();
    const entries: KvTransactionEntry<T>[] = [];
    for (const key of ordered) {
      if (entries.length === limit) break;
      if (this.#resolve(this.#state(keyId(key), key)) === null) continue;
      entries.push(this.#entry<T>(key, this.keyspace.decode(key)));
    }
    return entries;
  }

  /** What the database held for `key` when first read, and the check that holds the commit to it. */
  #recordBase(key: Uint8Array, raw: RawEntry | undefined, now: number): void {
    const base: StoredEntry | null =
      raw?.meta && isLive(raw.expiresAt, now)
        ? {
            value: raw.value,
            versionstamp: raw.versionstamp,
            expiresAt: raw.expiresAt,
            meta: raw.meta,
          }
        : null;
    const id = keyId(key);
    this.#state(id, key).base = base;
    if (!this.#checks.has(id))
      this.#checks.set(id, { key, versionstamp: base?.versionstamp ?? null });
  }

  #entry<T>(bytes: Uint8Array, key: KvKey): KvTransactionEntry<T> {
    const state = this.#state(keyId(bytes), bytes);
    const current = this.#resolve(state);
    return {
      key,
      value: current ? (decodeValue(current.value) as T) : null,
      versionstamp: current && !state.written ? current.versionstamp : null,
    };
  }

  set(key: KvKey, value: unknown, options: KvSetOptions = {}): this {
    const info = writeInfoFrom(options, SET_OPTIONS);
    return this.#write({
      type: "set",
      key: this.keyspace.encode(key),
      value: this.db.encodeValue(value),
      expiresAt: expiryFrom(options.expireIn, this.db.now()),
      ...(info && { info }),
    });
  }

  delete(key: KvKey, info?: KvWriteInfo): this {
    const checked = writeInfoFrom(info);
    return this.#write({
      type: "delete",
      key: this.keyspace.encode(key),
      ...(checked && { info: checked }),
    });
  }

  sum(key: KvKey, n: KvU64 | bigint | number, options: KvSetOptions = {}): this {
    return this.#numeric("sum", key, n, options);
  }

  min(key: KvKey, n: KvU64 | bigint | number, options: KvSetOptions = {}): this {
    return this.#numeric("min", key, n, options);
  }

  max(key: KvKey, n: KvU64 | bigint | number, options: KvSetOptions = {}): this {
    return this.#numeric("max", key, n, options);
  }

  append(key: KvKey, items: readonly unknown[], options: KvSetOptions = {}): this {
    return this.#array("append", key, items, options);
  }

  prepend(key: KvKey, items: readonly unknown[], options: KvSetOptions = {}): this {
    return this.#array("prepend", key, items, options);
  }

  /** Puts a message on a queue when, and only if, the transaction commits. */
  enqueue(value: unknown, options: KvEnqueueOptions & { queue?: string } = {}): this {
    this.#enqueues.push(buildCommitEnqueue(this.db, this.keyspace, value, options));
    return this;
  }

  /** Adds an explicit versionstamp check to the commit. */
  check(...checks: { key: KvKey; versionstamp: string | null }[]): this {
    for (const check of checks) {
      const bytes = this.keyspace.encodeRead(check.key);
      this.#checks.set(keyId(bytes), { key: bytes, versionstamp: check.versionstamp });
    }
    return this;
  }

  /**
   * Commits only if `lock` is still held with its token at the commit (see
   * `AtomicOperation.checkLock`). A lock found lost fails the transaction with `LOCK_LOST`
   * instead of retrying it; a lock renewed meanwhile is a conflict, retried as any other.
   */
  checkLock(lock: KvLock | KvLockFence): this {
    this.#fences.push(fenceOf(this.db, this.keyspace, lock));
    return this;
  }

  /** @internal Commits the buffered writes under the recorded checks; null on conflict. */
  async commit(): Promise<{ versionstamp: string } | null> {
    const write = {
      checks: [...this.#checks.values()],
      ...(this.#rangeChecks.length > 0 && { rangeChecks: this.#rangeChecks }),
      mutations: this.#mutations,
      ...(this.#enqueues.length > 0 && { enqueues: this.#enqueues }),
    };
    if (this.#fences.length === 0) return this.db.commit(write, this.keyspace);
    const fenced = await fenceWrite(this.db, this.keyspace, this.#fences, write);
    return this.db.commit(fenced.write, fenced.scope);
  }

  #numeric(type: "sum" | "min" | "max", key: KvKey, n: unknown, options: KvSetOptions): this {
    const info = writeInfoFrom(options, SET_OPTIONS);
    return this.#write({
      type,
      key: this.keyspace.encode(key),
      operand: numericOperand(type, n),
      expiresAt: expiryFrom(options.expireIn, this.db.now()),
      ...(info && { info }),
    });
  }

  #array(type: "append" | "prepend", key: KvKey, items: unknown, options: KvSetOptions): this {
    const info = writeInfoFrom(options, SET_OPTIONS);
    return this.#write({
      type,
      key: this.keyspace.encode(key),
      value: arrayOperand(this.db, type, items),
      expiresAt: expiryFrom(options.expireIn, this.db.now()),
      ...(info && { info }),
    });
  }

  #write(mutation: Mutation): this {
    this.#mutations.push(mutation);
    const state = this.#state(keyId(mutation.key), mutation.key);
    state.written = true;
    if (mutation.type === "set" || mutation.type === "delete") {
      state.pending = [];
      state.current = mutation.type === "set" ? this.#applied(null, mutation) : null;
    } else if (state.current !== undefined) {
      state.current = this.#applied(state.current, mutation);
    } else {
      state.pending.push(mutation);
    }
    return this;
  }

  #resolve(state: KeyState): StoredEntry | null {
    if (state.current !== undefined) return state.current;
    let current = state.base ?? null;
    for (const mutation of state.pending) current = this.#applied(current, mutation);
    state.pending = [];
    state.current = current;
    return current;
  }

  #applied(current: StoredEntry | null, mutation: Mutation): StoredEntry | null {
    return applyMutation(current, mutation, {
      now: this.db.now(),
      versionstamp: "",
      hash: () => "",
    }).entry;
  }

  #state(id: string, key: Uint8Array): KeyState {
    let state = this.#keys.get(id);
    if (!state) {
      state = { key, pending: [], written: false };
      this.#keys.set(id, state);
    }
    return state;
  }
}

/** Runs `fn` in a transaction, retrying on conflict. */
export async function runTransaction<R>(
  db: Database,
  keyspace: Keyspace,
  fn: (tx: KvTransaction) => R | Promise<R>,
  options: KvTransactionOptions = {},
): Promise<KvTransactionResult<R>> {
  if (typeof fn !== "function")
    fail("INVALID_ARGUMENT", `transaction takes a function, got ${describe(fn)}`);
  assertOptions("transaction", options, ["maxRetries", "backoff"]);
  const maxRetries = options.maxRetries ?? 10;
  const initial = options.backoff?.initialMs ?? 5;
  const cap = options.backoff?.maxMs ?? 1000;
  for (let attempt = 0; attempt <= maxRetries; attempt++) {
    db.assertOpen();
    const tx = new KvTransaction(db, keyspace);
    try {
      const value = await fn(tx);
      const result = await tx.commit();
      if (result) return { ok: true, value, versionstamp: result.versionstamp };
    } catch (error) {
      return { ok: false, error };
    }
    if (attempt < maxRetries) {
      const ceiling = Math.min(cap, initial * 2 ** attempt);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
    }
  }
  return {
    ok: false,
    error: new KvError(
      "CONFLICT",
      `the transaction conflicted with other writes ${maxRetries + 1} times`,
    ),
  };
}
