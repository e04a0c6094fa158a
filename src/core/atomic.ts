/**
 * Atomic operations: checks, then mutations, committed all or nothing in one driver
 * transaction. Checks are evaluated inside that transaction, never before it.
 */
import { uuidv7 } from "uuidv7";
import { type KvKey, type KvKeyPart, startsWith } from "../codec/key.js";
import type { KvU64 } from "../codec/u64.js";
import type { RawValue } from "../codec/value.js";
import { assertVersionstamp } from "../codec/versionstamp.js";
import type { Check, Enqueue, Mutation } from "../contract/index.js";
import { describe, fail } from "../errors.js";
import { assertCounts } from "./commit.js";
import { arrayOperand, type Database, numericOperand } from "./database.js";
import type { Keyspace } from "./keyspace.js";
import { expiryFrom, SET_OPTIONS, writeInfoFrom } from "./limits.js";
import { commitFenced, type Fence, fenceOf, type KvLock, type KvLockFence } from "./locks/index.js";
import { buildCommitEnqueue, type KvEnqueueOptions } from "./queue.js";
import type { Scope } from "./scope.js";
import type { KvCommitError, KvCommitResult, KvSetOptions, KvWriteInfo } from "./types.js";

/**
 * A UUIDv7 placeholder from {@link AtomicOperation.uuid}: usable as a key part or anywhere in a
 * value of the same operation, and replaced by one UUIDv7 string when the operation commits.
 */
export class KvUuid {
  /** @internal */
  constructor(readonly index: number) {}
}

/**
 * Stands for the commit's own versionstamp as the last part of a `set`'s key (Deno KV's
 * `kv.commitVersionstamp()`): the key is written as its other parts followed by the
 * versionstamp, a 20-character string, so such keys sort in commit order.
 */
export const COMMIT_VERSIONSTAMP: unique symbol = Symbol.for("cellar.commitVersionstamp");

/** A key part, or a placeholder inside an atomic operation. */
export type KvAtomicKey = readonly (KvKeyPart | KvUuid | typeof COMMIT_VERSIONSTAMP)[];

export interface KvAtomicCheck {
  readonly key: KvKey;
  /** `null` requires the key to be absent. */
  readonly versionstamp: string | null;
}

/** Deno KV's low-level mutation objects, accepted by {@link AtomicOperation.mutate}. */
export type KvMutation = { readonly key: KvAtomicKey } & (
  | { readonly type: "set"; readonly value: unknown; readonly expireIn?: number }
  | { readonly type: "delete" }
  | { readonly type: "sum" | "min" | "max"; readonly value: KvU64 | bigint | number }
  | { readonly type: "append" | "prepend"; readonly value: readonly unknown[] }
);

type Pending =
  | {
      type: "set";
      key: KvAtomicKey;
      value: unknown;
      raw?: RawValue;
      expiresAt: number | null;
      info?: KvWriteInfo;
    }
  | { type: "delete"; key: KvAtomicKey; info?: KvWriteInfo }
  | {
      type: "sum" | "min" | "max";
      key: KvAtomicKey;
      operand: bigint | number;
      expiresAt: number | null;
      info?: KvWriteInfo;
    }
  | {
      type: "append" | "prepend";
      key: KvAtomicKey;
      items: unknown[];
      expiresAt: number | null;
      info?: KvWriteInfo;
    };

/**
 * Built by `kv.atomic()`. Every method validates its input at once and returns `this`;
 * `commit()` resolves to `{ ok: true, versionstamp, uuids }`, or `{ ok: false }` when a check
 * failed (then nothing was written).
 *
 * @example
 * const res = await kv.atomic()
 *   .check({ key: ["balance", "alice"], versionstamp: entry.versionstamp })
 *   .set(["balance", "alice"], 90)
 *   .sum(["transfers"], 1n)
 *   .commit();
 */
export class AtomicOperation {
  readonly #checks: Check[] = [];
  readonly #pending: Pending[] = [];
  readonly #enqueues: Enqueue[] = [];
  readonly #fences: Fence[] = [];
  readonly #joined: AtomicOperation[] = [];
  #placeholders = 0;
  #committed = false;

  constructor(
    private readonly db: Database,
    private readonly keyspace: Keyspace,
  ) {}

  check(...checks: KvAtomicCheck[]): this {
    for (const check of checks) {
      if (typeof check !== "object" || check === null) {
        fail("INVALID_ARGUMENT", `a check is { key, versionstamp }, got ${describe(check)}`);
      }
      assertVersionstamp(check.versionstamp);
      this.#checks.push({
        key: this.keyspace.encodeRead(check.key),
        versionstamp: check.versionstamp,
      });
    }
    this.#assertCounts();
    return this;
  }

  /**
   * Commits only if `lock` is still held with its token when the commit is applied: a lease that
   * ran out, was released or was taken since makes `commit()` resolve `{ ok: false }`, as a
   * failed check does. `lock` is a `KvLock` of this database, or `{ name, token }` of a lock of
   * this operation's namespace (a token handed to another process). Counts as a check.
   *
   * @example
   * await kv.atomic().checkLock(lock).set(["report"], report).commit();
   */
  checkLock(lock: KvLock | KvLockFence): this {
    this.#fences.push(fenceOf(this.db, this.keyspace, lock));
    this.#assertCounts();
    return this;
  }

  set(key: KvAtomicKey, value: unknown, options: KvSetOptions = {}): this {
    this.#validateKey(key, true);
    const raw = this.db.encodeValue(value);
    const info = writeInfoFrom(options, SET_OPTIONS);
    return this.#push({
      type: "set",
      key,
      value,
      // A value queued before any placeholder exists cannot hold one: keep its encoding.
      ...(this.#placeholders === 0 && { raw }),
      expiresAt: expiryFrom(options.expireIn, 0),
      ...(info && { info }),
    });
  }

  delete(key: KvAtomicKey, info?: KvWriteInfo): this {
    this.#validateKey(key);
    const checked = writeInfoFrom(info);
    return this.#push({ type: "delete", key, ...(checked && { info: checked }) });
  }

  /** Adds to a `KvU64` (modulo 2^64); an absent key takes `n`. */
  sum(key: KvAtomicKey, n: KvU64 | bigint | number, options: KvSetOptions = {}): this {
    return this.#numeric("sum", key, n, options);
  }

  /** Keeps the smaller of the stored value and `n` (both `KvU64`, or both numbers). */
  min(key: KvAtomicKey, n: KvU64 | bigint | number, options: KvSetOptions = {}): this {
    return this.#numeric("min", key, n, options);
  }

  /** Keeps the larger of the stored value and `n` (both `KvU64`, or both numbers). */
  max(key: KvAtomicKey, n: KvU64 | bigint | number, options: KvSetOptions = {}): this {
    return this.#numeric("max", key, n, options);
  }

  /** Appends `items` to the stored array; an absent key takes `items`. */
  append(key: KvAtomicKey, items: readonly unknown[], options: KvSetOptions = {}): this {
    return this.#array("append", key, items, options);
  }

  /** Prepends `items` to the stored array; an absent key takes `items`. */
  prepend(key: KvAtomicKey, items: readonly unknown[], options: KvSetOptions = {}): this {
    return this.#array("prepend", key, items, options);
  }

  /** Applies Deno KV-style mutation objects. */
  mutate(...mutations: KvMutation[]): this {
    for (const m of mutations) {
      if (typeof m !== "object" || m === null)
        fail("INVALID_MUTATION", `a mutation is an object, got ${describe(m)}`);
      switch (m.type) {
        case "set":
          this.set(m.key, m.value, m.expireIn === undefined ? {} : { expireIn: m.expireIn });
          break;
        case "delete":
          this.delete(m.key);
          break;
        case "sum":
        case "min":
        case "max":
          this.#numeric(m.type, m.key, m.value, {});
          break;
        case "append":
        case "prepend":
          this.#array(m.type, m.key, m.value, {});
          break;
        default:
          fail(
            "INVALID_MUTATION",
            `unknown mutation type ${describe((m as { type: unknown }).type)}`,
          );
      }
    }
    return this;
  }

  /**
   * Puts a message on a queue (the namespace's default queue unless `options.queue` names one),
   * committed with the rest of the operation or not at all.
   */
  enqueue(value: unknown, options: KvEnqueueOptions & { queue?: string } = {}): this {
    this.#enqueues.push(buildCommitEnqueue(this.db, this.keyspace, value, options));
    this.#assertCounts();
    return this;
  }

  /** A placeholder resolved to one fresh UUIDv7 at commit, the same wherever it is used. */
  uuid(): KvUuid {
    return new KvUuid(this.#placeholders++);
  }

  /**
   * @internal Commits `other`'s checks and mutations with this operation's, all or nothing:
   * for a face that keeps its own record in one of Cellar's namespaces (`reservedView`) in the
   * same commit as a user's write. `other` belongs to the same database, and neither takes
   * locks, placeholders or enqueues.
   */
  join(other: AtomicOperation): this {
    if (other.db !== this.db) fail("INVALID_ARGUMENT", "join: the operations are of two databases");
    for (const op of [this, other]) {
      if (op.#fences.length > 0 || op.#enqueues.length > 0 || op.#placeholders > 0)
        fail(
          "INVALID_ARGUMENT",
          "join: a joined operation takes no locks, placeholders or enqueues",
        );
    }
    this.#joined.push(other);
    return this;
  }

  get size(): { checks: number; mutations: number } {
    return { checks: this.#checks.length, mutations: this.#pending.length };
  }

  async commit(): Promise<KvCommitResult | KvCommitError> {
    this.db.assertOpen();
    if (this.#committed) fail("INVALID_ARGUMENT", "this atomic operation was already committed");
    this.#committed = true;
    const uuids = Array.from({ length: this.#placeholders }, () => uuidv7());
    const ops = [this, ...this.#joined];
    const write = (now: number) => ({
      checks: ops.flatMap((op) => op.#checks),
      mutations: ops.flatMap((op) => op.#pending.map((p) => op.#resolve(p, uuids, now))),
      ...(this.#enqueues.length > 0 && { enqueues: this.#enqueues }),
    });
    const now = this.db.now();
    const result =
      this.#fences.length > 0
        ? await commitFenced(this.db, this.keyspace, this.#fences, write)
        : await this.db.commit(
            write(now),
            ops.length > 1 ? jointScope(ops.map((op) => op.keyspace)) : this.keyspace,
            now,
          );
    if (!result) return { ok: false };
    return {
      ok: true,
      versionstamp: result.versionstamp,
      uuids,
      ...(result.enqueued && { enqueued: result.enqueued }),
    };
  }

  #numeric(type: "sum" | "min" | "max", key: KvAtomicKey, n: unknown, options: KvSetOptions): this {
    this.#validateKey(key);
    const operand = numericOperand(type, n);
    const info = writeInfoFrom(options, SET_OPTIONS);
    return this.#push({
      type,
      key,
      operand,
      expiresAt: expiryFrom(options.expireIn, 0),
      ...(info && { info }),
    });
  }

  #array(
    type: "append" | "prepend",
    key: KvAtomicKey,
    items: unknown,
    options: KvSetOptions,
  ): this {
    this.#validateKey(key);
    arrayOperand(this.db, type, items);
    const info = writeInfoFrom(options, SET_OPTIONS);
    return this.#push({
      type,
      key,
      items: [...(items as unknown[])],
      expiresAt: expiryFrom(options.expireIn, 0),
      ...(info && { info }),
    });
  }

  #push(pending: Pending): this {
    this.#pending.push(pending);
    this.#assertCounts();
    return this;
  }

  #assertCounts(): void {
    assertCounts(
      this.db.limits,
      this.#checks.length + this.#fences.length,
      this.#pending.length + this.#enqueues.length,
    );
  }

  #validateKey(key: KvAtomicKey, allowVersionstamp = false): void {
    if (!Array.isArray(key))
      fail("INVALID_KEY", `a key must be an array of parts, got ${describe(key)}`);
    const stamp = key.indexOf(COMMIT_VERSIONSTAMP);
    if (stamp >= 0 && !(allowVersionstamp && stamp === key.length - 1)) {
      fail("INVALID_KEY", "the commit versionstamp may only be the last part of a set's key");
    }
    // Placeholders stand for strings of their final length; validate with those in their place.
    this.keyspace.encode(
      key.map((part) =>
        part instanceof KvUuid
          ? "00000000-0000-7000-8000-000000000000"
          : part === COMMIT_VERSIONSTAMP
            ? "00000000000000000000"
            : part,
      ),
    );
  }

  #resolve(pending: Pending, uuids: string[], now: number): Mutation {
    const stamped = pending.key.at(-1) === COMMIT_VERSIONSTAMP;
    const parts = stamped ? pending.key.slice(0, -1) : pending.key;
    const key = this.keyspace.encode(
      parts.map((part) => (part instanceof KvUuid ? uuids[part.index]! : (part as KvKeyPart))),
    );
    const base = { key, ...(pending.info && { info: pending.info }) };
    // Expiry was validated relative to 0 when queued; make it absolute now.
    const expiresAt =
      "expiresAt" in pending && pending.expiresAt !== null ? pending.expiresAt + now : null;
    switch (pending.type) {
      case "delete":
        return { ...base, type: "delete" };
      case "set":
        return {
          ...base,
          type: "set",
          value: pending.raw ?? this.db.encodeValue(replaceUuids(pending.value, uuids)),
          expiresAt,
          ...(stamped && { versionstampSuffix: true }),
        };
      case "sum":
      case "min":
      case "max":
        return { ...base, type: pending.type, operand: pending.operand, expiresAt };
      case "append":
      case "prepend":
        return {
          ...base,
          type: pending.type,
          value: arrayOperand(this.db, pending.type, replaceUuids(pending.items, uuids)),
          expiresAt,
        };
    }
  }
}

/** The scope of several keyspaces: each key and range must lie in one of them. */
function jointScope(keyspaces: readonly Keyspace[]): Scope {
  const owner = (key: Uint8Array) =>
    keyspaces.find((keyspace) => startsWith(key, keyspace.prefix)) ?? keyspaces[0]!;
  return {
    prefixLength: (key) => owner(key).prefixLength(key),
    assertRange: (start, end) => owner(start).assertRange(start, end),
  };
}

/** Replaces placeholders inside plain objects, arrays, Maps and Sets. */
function replaceUuids(value: unknown, uuids: string[]): unknown {
  if (uuids.length === 0) return value;
  if (value instanceof KvUuid) return uuids[value.index];
  if (Array.isArray(value)) return value.map((item) => replaceUuids(item, uuids));
  if (value instanceof Map) {
    return new Map([...value].map(([k, v]) => [replaceUuids(k, uuids), replaceUuids(v, uuids)]));
  }
  if (value instanceof Set) return new Set([...value].map((item) => replaceUuids(item, uuids)));
  if (typeof value === "object" && value !== null) {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceUuids(v, uuids)]));
  }
  return value;
}
