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
import { compareBytes, latin1Decode, utf8Decode, utf8Encode, utf8EncodeInto } from "./bytes.js";

export { compareBytes };

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

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

// Encoding is synchronous, so one growable scratch buffer serves every call.
let scratch = new Uint8Array(4096);
// Eight bytes to convert doubles and 64-bit integers through.
const doubleView = new DataView(new ArrayBuffer(8));
let scratchView = new DataView(scratch.buffer);

function ensure(offset: number, needed: number): void {
  if (offset + needed <= scratch.length) return;
  const next = new Uint8Array(Math.max(scratch.length * 2, offset + needed));
  next.set(scratch.subarray(0, offset));
  scratch = next;
  scratchView = new DataView(next.buffer);
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
  return scratch.slice(0, offset);
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
    offset += utf8EncodeInto(part, scratch, offset);
    scratch[offset] = 0;
    return offset + 1;
  }
  return writeEscaped(utf8Encode(part), offset);
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
  const magnitude = negative ? -part : part;
  if (magnitude < 1n << 64n) {
    // The common case without hex text: the magnitude's big-endian bytes, leading zeros dropped.
    doubleView.setBigUint64(0, magnitude);
    let skip = 0;
    while (doubleView.getUint8(skip) === 0) skip++;
    const n = 8 - skip;
    ensure(offset, n + 1);
    scratch[offset++] = negative ? INT_ZERO - n : INT_ZERO + n;
    for (let i = 0; i < n; i++) {
      const byte = doubleView.getUint8(skip + i);
      scratch[offset + i] = negative ? ~byte & 0xff : byte;
    }
    return offset + n;
  }
  let hex = magnitude.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const n = hex.length / 2;
  if (n > 255) fail("INVALID_KEY", "a bigint key part must fit in 255 bytes");
  ensure(offset, n + 2);
  scratch[offset++] = negative ? NEG_INT_START : POS_INT_END;
  scratch[offset++] = negative ? n ^ 0xff : n;
  for (let i = 0; i < n; i++) {
    const byte = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    scratch[offset + i] = negative ? ~byte & 0xff : byte;
  }
  return offset + n;
}

/**
 * Decodes bytes produced by {@link encodeKey}. Throws `INVALID_KEY` on malformed input.
 *
 * @example
 * decodeKey(encodeKey(["a", 1])); // ["a", 1]
 */
export function decodeKey(buf: Uint8Array): KvKeyPart[] {
  const parts: KvKeyPart[] = [];
  let i = 0;
  while (i < buf.length) {
    const tag = buf[i++]!;
    if (tag === STRING || tag === BYTES) {
      i = readEscaped(buf, i, tag === STRING, parts);
    } else if (tag >= NEG_INT_START && tag <= POS_INT_END) {
      const [value, next] = readBigInt(buf, i, tag);
      parts.push(value);
      i = next;
    } else if (tag === DOUBLE) {
      if (i + 8 > buf.length) malformed();
      parts.push(readDouble(buf, i));
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

function readDouble(buf: Uint8Array, start: number): number {
  const negative = (buf[start]! & 0x80) === 0;
  for (let j = 0; j < 8; j++) {
    const byte = buf[start + j]!;
    doubleView.setUint8(j, negative ? ~byte & 0xff : j === 0 ? byte ^ 0x80 : byte);
  }
  return doubleView.getFloat64(0);
}

/** Reads an escaped byte string or string part into `parts`; returns the offset after it. */
function readEscaped(buf: Uint8Array, start: number, text: boolean, parts: KvKeyPart[]): number {
  let end = buf.indexOf(0, start);
  if (end < 0) malformed();
  if (buf[end + 1] !== 0xff) {
    // A copy as a plain Uint8Array, whatever subclass (Buffer) the input is.
    parts.push(text ? utf8Decode(buf, start, end) : new Uint8Array(buf.subarray(start, end)));
    return end + 1;
  }
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
      const bytes = Uint8Array.from(out);
      parts.push(text ? utf8Decode(bytes) : bytes);
      return end + 1;
    }
  }
}

function readBigInt(buf: Uint8Array, start: number, tag: number): [bigint, number] {
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
  let hex = "0x";
  for (let j = i; j < i + n; j++) hex += HEX[negative ? ~buf[j]! & 0xff : buf[j]!];
  const magnitude = BigInt(hex);
  return [negative ? -magnitude : magnitude, i + n];
}

/**
 * A string standing for encoded key bytes, one latin1 character per byte: usable as a map key,
 * and ordered as the bytes are.
 */
export function keyId(key: Uint8Array): string {
  return latin1Decode(key);
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
  const out = new Uint8Array(bytes.length + tail.length);
  out.set(bytes, 0);
  out.set(tail, bytes.length);
  return out;
}

/**
 * The offset after each part of the encoded key `buf` that starts at `from`: the parts'
 * boundaries, found without decoding them. Throws `INVALID_KEY` on malformed input.
 *
 * @example
 * partEnds(encodeKey(["a", 1n])); // [3, 5]
 */
export function partEnds(buf: Uint8Array, from = 0): number[] {
  const ends: number[] = [];
  let i = from;
  while (i < buf.length) {
    const tag = buf[i++]!;
    if (tag === STRING || tag === BYTES) {
      for (;;) {
        const zero = buf.indexOf(0, i);
        if (zero < 0) malformed();
        if (buf[zero + 1] === 0xff) {
          i = zero + 2;
          continue;
        }
        i = zero + 1;
        break;
      }
    } else if (tag === NEG_INT_START || tag === POS_INT_END) {
      if (i >= buf.length) malformed();
      const n = tag === NEG_INT_START ? buf[i]! ^ 0xff : buf[i]!;
      i += 1 + n;
    } else if (tag > NEG_INT_START && tag < POS_INT_END) {
      i += Math.abs(tag - INT_ZERO);
    } else if (tag === DOUBLE) {
      i += 8;
    } else if (tag !== FALSE && tag !== TRUE) {
      malformed();
    }
    if (i > buf.length) malformed();
    ends.push(i);
  }
  return ends;
}
