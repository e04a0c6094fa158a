/**
 * A keyspace is one namespace's slice of the database: every key it writes is stored behind the
 * encoded namespace name, and every range it reads is clamped inside that prefix. Because the
 * name is a terminated tuple part, no key or range of one namespace can reach another's.
 */
import {
  compareBytes,
  concatBytes,
  decodeKey,
  encodeKey,
  type KvKey,
  startsWith,
} from "../codec/key.js";
import type { ReadRange } from "../contract/index.js";
import { describe, fail, KvError } from "../errors.js";
import { assertKeySize, assertReadKeySize } from "./commit.js";
import type { KvLimits } from "./limits.js";
import type { Scope } from "./scope.js";

const NAME = /^[^\0]{1,256}$/;

export class Keyspace implements Scope {
  readonly prefix: Uint8Array;
  /** Exclusive upper bound of every key in this keyspace. */
  readonly end: Uint8Array;

  constructor(
    readonly namespace: string,
    private readonly limits: KvLimits,
  ) {
    this.prefix = encodeKey([namespace]);
    this.end = concatBytes(this.prefix, 0xff);
  }

  /** The stored form of `key`; throws `INVALID_KEY` or `KEY_TOO_LARGE`. */
  encode(key: KvKey): Uint8Array {
    assertNotEmpty(key);
    const bytes = encodeKey(key, this.prefix);
    assertKeySize(this.limits, bytes.length - this.prefix.length);
    return bytes;
  }

  /** The stored form of a key only read (a check): one byte over the key limit is allowed. */
  encodeRead(key: KvKey): Uint8Array {
    assertNotEmpty(key);
    const bytes = encodeKey(key, this.prefix);
    assertReadKeySize(this.limits, bytes.length - this.prefix.length);
    return bytes;
  }

  /**
   * The one-key range `[key, key + 0x00)` that reads `key`, from a single allocation; like every
   * key only read, it may be one byte over the key limit.
   */
  encodePoint(key: KvKey): ReadRange {
    assertNotEmpty(key);
    const end = encodeKey(key, this.prefix, true);
    assertReadKeySize(this.limits, end.length - 1 - this.prefix.length);
    return { start: end.subarray(0, end.length - 1), end, limit: 1, reverse: false };
  }

  /** Encodes without the size limit, for range bounds that are never stored. */
  encodeBound(key: KvKey): Uint8Array {
    return encodeKey(key, this.prefix);
  }

  prefixLength(key: Uint8Array): number {
    if (!startsWith(key, this.prefix)) throw outside(this.namespace);
    return this.prefix.length;
  }

  assertRange(start: Uint8Array, end: Uint8Array): void {
    if (!startsWith(start, this.prefix) || compareBytes(end, this.end) > 0)
      throw outside(this.namespace);
  }

  decode(stored: Uint8Array): KvKey {
    return decodeKey(stored.subarray(this.prefix.length));
  }
}

const outside = (namespace: string) =>
  new KvError("FORBIDDEN", `the key or range lies outside namespace ${JSON.stringify(namespace)}`);

/** An entry's key has at least one part, as in Deno KV; only selectors may be empty. */
function assertNotEmpty(key: KvKey): void {
  if (Array.isArray(key) && key.length === 0)
    fail("INVALID_KEY", "a key must have at least one part");
}

/** Throws `INVALID_ARGUMENT` unless `name` can name a user namespace. */
export function assertNamespaceName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !NAME.test(name) || name.startsWith("$")) {
    fail(
      "INVALID_ARGUMENT",
      `a namespace name is 1–256 characters without NUL and not starting with "$", got ${describe(name)}`,
    );
  }
}
