/**
 * The key codec: FoundationDB's tuple layout, byte for byte as Deno KV encodes keys
 * (`denoland/denokv` `proto/codec.rs`), so that comparing encoded keys as bytes orders them
 * exactly as Deno KV does:
 *
 * | part         | tag         | body                                                        |
 * |--------------|-------------|-------------------------------------------------------------|
 * | `Uint8Array` | `0x01`      | bytes, each `0x00` escaped as `0x00 0xff`, then `0x00`      |
 * | `string`     | `0x02`      | UTF-8, escaped the same way, then `0x00`                    |
 * | `bigint`     | `0x0b–0x1d` | big-endian magnitude; length in the tag (≤ 8 bytes) or in a |
 * |              |             | length byte (`0x0b`/`0x1d`); negatives are ones-complemented |
 * | `number`     | `0x21`      | IEEE-754 big-endian, sign bit flipped (all bits if negative)|
 * | `false/true` | `0x26/0x27` | nothing                                                     |
 *
 * So parts order by type first (bytes < string < bigint < number < boolean), then by value.
 * The terminators mean `["users"]` is never a byte prefix of `["usersX"]`.
 */
import { describe, fail, KvError } from "../errors.js";

export type KvKeyPart = Uint8Array | string | number | bigint | boolean;
export type KvKey = readonly KvKeyPart[];

const BYTES = 0x01;
const STRING = 0x02;
const NEG_INT_START = 0x0b;
const INT_ZERO = 0x14;
const POS_INT_END = 0x1d;
const DOUBLE = 0x21;
const FALSE = 0x26;
const TRUE = 0x27;

// Encoding is synchronous, so one growable scratch buffer serves every call.
let scratch = Buffer.allocUnsafe(4096);
let scratchView = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);

function ensure(offset: number, needed: number): void {
  if (offset + needed <= scratch.length) return;
  const next = Buffer.allocUnsafe(Math.max(scratch.length * 2, offset + needed));
  scratch.copy(next, 0, 0, offset);
  scratch = next;
  scratchView = new DataView(next.buffer, next.byteOffset, next.byteLength);
}

/**
 * Encodes a key to bytes, after `prefix` when given, followed by one zero byte when
 * `trailingZero` (the exclusive end of the key's point range). Throws `INVALID_KEY` for a part of
 * an unsupported type.
 *
 * @example
 * encodeKey(["users", 42n]); // Uint8Array [0x02, 0x75, …, 0x00, 0x15, 0x2a]
 */
export function encodeKey(key: KvKey, prefix?: Uint8Array, trailingZero = false): Uint8Array {
  if (!Array.isArray(key))
    fail("INVALID_KEY", `a key must be an array of parts, got ${describe(key)}`);
  let offset = 0;
  if (prefix) {
    ensure(0, prefix.length);
    scratch.set(prefix, 0);
    offset = prefix.length;
  }
  for (let i = 0; i < key.length; i++) offset = encodePart(key[i], offset, i);
  if (trailingZero) {
    ensure(offset, 1);
    scratch[offset++] = 0;
  }
  const out = Buffer.allocUnsafe(offset);
  scratch.copy(out, 0, 0, offset);
  return out;
}

function encodePart(part: unknown, offset: number, index: number): number {
  switch (typeof part) {
    case "string":
      return encodeString(part, offset);
    case "number":
      return encodeDouble(part, offset);
    case "bigint":
      return encodeBigInt(part, offset);
    case "boolean":
      ensure(offset, 1);
      scratch[offset] = part ? TRUE : FALSE;
      return offset + 1;
    default:
      if (part instanceof Uint8Array) return encodeBytes(part, offset);
      fail(
        "INVALID_KEY",
        `key part ${index} is ${describe(part)}; parts must be Uint8Array, string, number, bigint or boolean`,
      );
  }
}

function encodeString(part: string, offset: number): number {
  ensure(offset, part.length * 3 + 2);
  scratch[offset++] = STRING;
  if (!part.includes("\0")) {
    offset += scratch.write(part, offset, "utf8");
    scratch[offset] = 0;
    return offset + 1;
  }
  return writeEscaped(Buffer.from(part, "utf8"), offset);
}

function encodeBytes(part: Uint8Array, offset: number): number {
  ensure(offset, part.length * 2 + 2);
  scratch[offset++] = BYTES;
  return writeEscaped(part, offset);
}

function writeEscaped(bytes: Uint8Array, offset: number): number {
  ensure(offset, bytes.length * 2 + 1);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    scratch[offset++] = b;
    if (b === 0) scratch[offset++] = 0xff;
  }
  scratch[offset] = 0;
  return offset + 1;
}

function encodeDouble(part: number, offset: number): number {
  ensure(offset, 9);
  scratch[offset] = DOUBLE;
  if (Number.isNaN(part)) {
    // Canonical positive NaN, as Deno KV stores it.
    scratchView.setUint32(offset + 1, 0xfff80000);
    scratchView.setUint32(offset + 5, 0);
    return offset + 9;
  }
  scratchView.setFloat64(offset + 1, part);
  if (scratch[offset + 1]! & 0x80) {
    for (let i = 1; i <= 8; i++) scratch[offset + i] = ~scratch[offset + i]! & 0xff;
  } else {
    scratch[offset + 1] = scratch[offset + 1]! ^ 0x80;
  }
  return offset + 9;
}

function encodeBigInt(part: bigint, offset: number): number {
  if (part === 0n) {
    ensure(offset, 1);
    scratch[offset] = INT_ZERO;
    return offset + 1;
  }
  const negative = part < 0n;
  let hex = (negative ? -part : part).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const n = hex.length / 2;
  if (n > 255) fail("INVALID_KEY", "a bigint key part must fit in 255 bytes");
  ensure(offset, n + 2);
  if (n <= 8) {
    scratch[offset++] = negative ? INT_ZERO - n : INT_ZERO + n;
  } else {
    scratch[offset++] = negative ? NEG_INT_START : POS_INT_END;
    scratch[offset++] = negative ? n ^ 0xff : n;
  }
  scratch.write(hex, offset, "hex");
  if (negative) for (let i = 0; i < n; i++) scratch[offset + i] = ~scratch[offset + i]! & 0xff;
  return offset + n;
}

/**
 * Decodes bytes produced by {@link encodeKey}. Throws `INVALID_KEY` on malformed input.
 *
 * @example
 * decodeKey(encodeKey(["a", 1])); // ["a", 1]
 */
export function decodeKey(bytes: Uint8Array): KvKeyPart[] {
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const parts: KvKeyPart[] = [];
  let i = 0;
  while (i < buf.length) {
    const tag = buf[i++]!;
    if (tag === STRING || tag === BYTES) {
      const [raw, next] = readEscaped(buf, i);
      parts.push(tag === STRING ? raw.toString("utf8") : new Uint8Array(raw));
      i = next;
    } else if (tag >= NEG_INT_START && tag <= POS_INT_END) {
      const [value, next] = readBigInt(buf, i, tag);
      parts.push(value);
      i = next;
    } else if (tag === DOUBLE) {
      if (i + 8 > buf.length) malformed();
      const b = Buffer.from(buf.subarray(i, i + 8));
      if (b[0]! & 0x80) b[0] = b[0]! ^ 0x80;
      else for (let j = 0; j < 8; j++) b[j] = ~b[j]! & 0xff;
      parts.push(b.readDoubleBE(0));
      i += 8;
    } else if (tag === FALSE || tag === TRUE) {
      parts.push(tag === TRUE);
    } else {
      malformed();
    }
  }
  return parts;
}

function malformed(): never {
  throw new KvError("INVALID_KEY", "malformed encoded key");
}

function readEscaped(buf: Buffer, start: number): [Buffer, number] {
  let end = buf.indexOf(0, start);
  if (end < 0) malformed();
  if (buf[end + 1] !== 0xff) return [buf.subarray(start, end), end + 1];
  const out: number[] = [];
  let i = start;
  for (;;) {
    end = buf.indexOf(0, i);
    if (end < 0) malformed();
    for (let j = i; j < end; j++) out.push(buf[j]!);
    if (buf[end + 1] === 0xff) {
      out.push(0);
      i = end + 2;
    } else {
      return [Buffer.from(out), end + 1];
    }
  }
}

function readBigInt(buf: Buffer, start: number, tag: number): [bigint, number] {
  let i = start;
  let n: number;
  let negative: boolean;
  if (tag === NEG_INT_START || tag === POS_INT_END) {
    if (i >= buf.length) malformed();
    negative = tag === NEG_INT_START;
    n = negative ? buf[i++]! ^ 0xff : buf[i++]!;
  } else {
    negative = tag < INT_ZERO;
    n = Math.abs(tag - INT_ZERO);
  }
  if (i + n > buf.length) malformed();
  if (n === 0) return [0n, i];
  const body = Buffer.from(buf.subarray(i, i + n));
  if (negative) for (let j = 0; j < n; j++) body[j] = ~body[j]! & 0xff;
  const magnitude = BigInt(`0x${body.toString("hex")}`);
  return [negative ? -magnitude : magnitude, i + n];
}

/**
 * A string standing for encoded key bytes, one latin1 character per byte: usable as a map key,
 * and ordered as the bytes are.
 */
export function keyId(key: Uint8Array): string {
  const bytes = key instanceof Buffer ? key : Buffer.from(key.buffer, key.byteOffset, key.length);
  return bytes.toString("latin1");
}

/** Compares two encoded keys as unsigned bytes: the order of keys. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** True when `bytes` begins with `prefix`. */
export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** `bytes` followed by `suffix`, as a new buffer. */
export function concatBytes(bytes: Uint8Array, suffix: Uint8Array | number): Uint8Array {
  const tail = typeof suffix === "number" ? Uint8Array.of(suffix) : suffix;
  const out = Buffer.allocUnsafe(bytes.length + tail.length);
  out.set(bytes, 0);
  out.set(tail, bytes.length);
  return out;
}
