import { describe, fail } from "../errors.js";

const MAX = (1n << 64n) - 1n;

/**
 * An unsigned 64-bit integer stored as its own value type, the operand of the `sum`, `min` and
 * `max` mutations. Immutable.
 *
 * @example
 * await kv.set(["visits"], new KvU64(0n));
 * await kv.atomic().sum(["visits"], 1n).commit();
 */
export class KvU64 {
  readonly value: bigint;

  constructor(value: bigint) {
    if (typeof value !== "bigint")
      fail("INVALID_VALUE", `KvU64 takes a bigint, got ${describe(value)}`);
    if (value < 0n || value > MAX)
      fail("INVALID_VALUE", `KvU64 must be in [0, 2^64 - 1], got ${value}`);
    this.value = value;
    Object.freeze(this);
  }

  valueOf(): bigint {
    return this.value;
  }

  toString(): string {
    return this.value.toString();
  }

  toJSON(): string {
    return this.value.toString();
  }

  get [Symbol.toStringTag](): string {
    return "KvU64";
  }

  /** Little-endian bytes, the stored form. */
  static toBytes(value: KvU64): Uint8Array {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, value.value, true);
    return out;
  }

  static fromBytes(bytes: Uint8Array): KvU64 {
    if (bytes.length !== 8) fail("INVALID_VALUE", `a KvU64 is 8 bytes, got ${bytes.length}`);
    return new KvU64(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  }
}

/** Wrap-around addition modulo 2^64, as Deno KV's `sum` does. */
export function wrappingAdd(a: bigint, b: bigint): bigint {
  return (a + b) & MAX;
}
