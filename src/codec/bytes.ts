/**
 * Byte helpers on plain `Uint8Array`s, the one place Cellar turns bytes into text and back.
 * Nothing here uses `Buffer`, so the codecs, the wire formats and the memory and remote drivers
 * run unchanged in browsers.
 */

const encoder = new TextEncoder();
// `fatal: false`: invalid UTF-8 decodes to U+FFFD, as `Buffer#toString("utf8")` does.
const decoder = new TextDecoder();

/**
 * UTF-8 bytes of `text` (lone surrogates become U+FFFD, as in every UTF-8 encoder).
 *
 * @example
 * utf8Encode("é"); // Uint8Array [0xc3, 0xa9]
 */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/**
 * Writes the UTF-8 bytes of `text` into `target` at `offset`, which must have room for
 * `text.length * 3` bytes; returns the number of bytes written.
 *
 * @example
 * const n = utf8EncodeInto("abc", scratch, 0); // 3
 */
export function utf8EncodeInto(text: string, target: Uint8Array, offset: number): number {
  // A plain loop beats the native call for the short ASCII strings keys are mostly made of.
  const length = text.length;
  if (length < 64) {
    let i = 0;
    for (; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code > 0x7f) break;
      target[offset + i] = code;
    }
    if (i === length) return length;
    return i + encoder.encodeInto(text.slice(i), target.subarray(offset + i)).written;
  }
  return encoder.encodeInto(text, target.subarray(offset)).written;
}

/**
 * The text of UTF-8 `bytes` (invalid sequences become U+FFFD).
 *
 * @example
 * utf8Decode(Uint8Array.of(0x68, 0x69)); // "hi"
 */
export function utf8Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  if (end - start < 32) {
    let text = "";
    for (let i = start; i < end; i++) {
      const byte = bytes[i]!;
      if (byte > 0x7f) return decoder.decode(bytes.subarray(start, end));
      text += String.fromCharCode(byte);
    }
    return text;
  }
  return decoder.decode(bytes.subarray(start, end));
}

/**
 * The number of bytes `text` takes in UTF-8, without encoding it.
 *
 * @example
 * utf8Length("€"); // 3
 */
export function utf8Length(text: string): number {
  return nodeBuffer ? nodeBuffer.byteLength(text, "utf8") : countUtf8(text);
}

// Node's Buffer counts natively, several times faster than the loop: used where the runtime has
// it, found on the global object so that nothing here imports Node.
const nodeBuffer = (
  globalThis as { Buffer?: { byteLength(text: string, encoding: "utf8"): number } }
).Buffer;

function countUtf8(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) length += 1;
    else if (code >= 0xd800 && code <= 0xdbff && isLowSurrogate(text.charCodeAt(i + 1))) {
      // A surrogate pair: 2 UTF-16 units, 4 bytes.
      length += 2;
      i++;
    } else length += 2; // Lone surrogates encode as U+FFFD, 3 bytes like the rest of the BMP.
  }
  return length;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * A string of one character per byte (code points 0–255): usable as a map key, and ordered as
 * the bytes are.
 *
 * @example
 * latin1Decode(Uint8Array.of(0x61, 0xff)); // "a\u00ff"
 */
export function latin1Decode(bytes: Uint8Array): string {
  if (bytes.length <= CHUNK) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  let text = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[]);
  }
  return text;
}

/**
 * The bytes of a string made by {@link latin1Decode}.
 *
 * @example
 * latin1Encode("a\u00ff"); // Uint8Array [0x61, 0xff]
 */
export function latin1Encode(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// Spreading more arguments than this into `String.fromCharCode` risks the engine's stack limit.
const CHUNK = 8192;

const B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_CODES = Uint8Array.from(B64_CHARS, (c) => c.charCodeAt(0));
const B64_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUES[B64_CHARS.charCodeAt(i)] = i;
// The standard alphabet decodes too, as Node's base64url decoder accepts it.
B64_VALUES["+".charCodeAt(0)] = 62;
B64_VALUES["/".charCodeAt(0)] = 63;

/**
 * Base64url without padding (RFC 4648 §5), the form bytes take in Cellar's JSON, wire protocol
 * and list cursors.
 *
 * @example
 * toBase64Url(Uint8Array.of(0xfb, 0xff)); // "-_8"
 */
export function toBase64Url(bytes: Uint8Array): string {
  const length = bytes.length;
  const out = new Uint8Array(Math.ceil((length * 4) / 3));
  let o = 0;
  let i = 0;
  for (; i + 2 < length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = B64_CODES[n >>> 18]!;
    out[o++] = B64_CODES[(n >>> 12) & 63]!;
    out[o++] = B64_CODES[(n >>> 6) & 63]!;
    out[o++] = B64_CODES[n & 63]!;
  }
  if (i < length) {
    const n = (bytes[i]! << 16) | ((i + 1 < length ? bytes[i + 1]! : 0) << 8);
    out[o++] = B64_CODES[n >>> 18]!;
    out[o++] = B64_CODES[(n >>> 12) & 63]!;
    if (i + 1 < length) out[o++] = B64_CODES[(n >>> 6) & 63]!;
  }
  return latin1Decode(out);
}

/**
 * The bytes of base64url text, padded or not; the standard alphabet (`+`, `/`) is accepted too.
 * Returns `null` for any other character, so each caller refuses it with its own error.
 *
 * @example
 * fromBase64Url("-_8"); // Uint8Array [0xfb, 0xff]
 */
export function fromBase64Url(text: string): Uint8Array | null {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--;
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? B64_VALUES[code]! : -1;
    if (value < 0) return null;
    acc = ((acc << 6) | value) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Lowercase hex, two characters per byte.
 *
 * @example
 * toHex(Uint8Array.of(0x0a, 0xff)); // "0aff"
 */
export function toHex(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += HEX[bytes[i]!];
  return text;
}

/**
 * The bytes of hex text of even length; `null` when it is not hex.
 *
 * @example
 * fromHex("0aff"); // Uint8Array [0x0a, 0xff]
 */
export function fromHex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0) return null;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) {
    const high = hexValue(text.charCodeAt(2 * i));
    const low = hexValue(text.charCodeAt(2 * i + 1));
    if (high < 0 || low < 0) return null;
    out[i] = (high << 4) | low;
  }
  return out;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * The parts one after the other, as a new array.
 *
 * @example
 * concatBytes(Uint8Array.of(1), Uint8Array.of(2, 3)); // Uint8Array [1, 2, 3]
 */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Compares as unsigned bytes, shorter first on a common prefix: negative, zero or positive,
 * like `Buffer.compare`. This is the order of encoded keys.
 *
 * @example
 * compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0)); // -1
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/**
 * True when both hold the same bytes.
 *
 * @example
 * equalBytes(Uint8Array.of(1, 2), Uint8Array.of(1, 2)); // true
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
