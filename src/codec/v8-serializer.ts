/** The writing half of V8's serialization format in JavaScript (see `v8-web.ts`). */
import {
  ARRAY_INDEX,
  BACKED_BY_RESIZABLE,
  ERROR_TAGS,
  ErrorTag,
  MAX_ARRAY_INDEX,
  REGEXP_FLAGS,
  Tag,
  VERSION,
  VIEWS,
} from "./v8-format.js";

/**
 * Writes values in V8's serialization format, as `node:v8`'s `Serializer` does.
 *
 * @example
 * const serializer = new Serializer();
 * serializer.writeHeader();
 * serializer.writeValue(new Map([["a", 1n]]));
 * const bytes = serializer.releaseBuffer();
 */
export class Serializer {
  #buffer = new Uint8Array(64);
  #view = new DataView(this.#buffer.buffer);
  #length = 0;
  readonly #ids = new Map<object, number>();

  /** Writes the format's header: a version tag, then the version. */
  writeHeader(): void {
    this.#byte(Tag.Version);
    this.#varint(VERSION);
  }

  /** Writes one value; throws when structured clone cannot carry it. */
  writeValue(value: unknown): boolean {
    this.#value(value);
    return true;
  }

  /** The bytes written so far; the serializer is empty afterwards. */
  releaseBuffer(): Uint8Array {
    const out = this.#buffer.slice(0, this.#length);
    this.#buffer = new Uint8Array(64);
    this.#view = new DataView(this.#buffer.buffer);
    this.#length = 0;
    this.#ids.clear();
    return out;
  }

  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.length) return;
    const next = new Uint8Array(Math.max(this.#buffer.length * 2, this.#length + bytes));
    next.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = next;
    this.#view = new DataView(next.buffer);
  }

  #byte(byte: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = byte;
  }

  #varint(value: number): void {
    this.#reserve(10);
    let rest = value;
    while (rest >= 0x80) {
      this.#buffer[this.#length++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.#buffer[this.#length++] = rest;
  }

  #double(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.#length, value, true);
    this.#length += 8;
  }

  #raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  #value(value: unknown): void {
    switch (typeof value) {
      case "undefined":
        this.#byte(Tag.Undefined);
        break;
      case "boolean":
        this.#byte(value ? Tag.True : Tag.False);
        break;
      case "number":
        this.#number(value);
        break;
      case "bigint":
        this.#byte(Tag.BigInt);
        this.#bigint(value);
        break;
      case "string":
        this.#string(value);
        break;
      case "object":
        if (value === null) this.#byte(Tag.Null);
        else this.#receiver(value);
        break;
      default:
        cloneError(value);
    }
  }

  #number(value: number): void {
    if (
      Number.isInteger(value) &&
      value >= -(2 ** 31) &&
      value < 2 ** 31 &&
      !Object.is(value, -0)
    ) {
      this.#byte(Tag.Int32);
      this.#varint(((value << 1) ^ (value >> 31)) >>> 0);
    } else {
      this.#byte(Tag.Double);
      this.#double(value);
    }
  }

  /** A bigint's body: sign and byte length, then 64-bit digits, least significant first. */
  #bigint(value: bigint): void {
    const negative = value < 0n;
    let magnitude = negative ? -value : value;
    const digits: bigint[] = [];
    while (magnitude > 0n) {
      digits.push(BigInt.asUintN(64, magnitude));
      magnitude >>= 64n;
    }
    this.#varint(digits.length * 8 * 2 + (negative ? 1 : 0));
    this.#reserve(digits.length * 8);
    for (const digit of digits) {
      this.#view.setBigUint64(this.#length, digit, true);
      this.#length += 8;
    }
  }

  #string(value: string): void {
    let oneByte = true;
    for (let i = 0; i < value.length; i++) {
      if (value.charCodeAt(i) > 0xff) {
        oneByte = false;
        break;
      }
    }
    if (oneByte) {
      this.#byte(Tag.OneByteString);
      this.#varint(value.length);
      this.#reserve(value.length);
      for (let i = 0; i < value.length; i++) this.#buffer[this.#length++] = value.charCodeAt(i);
      return;
    }
    const byteLength = value.length * 2;
    // V8 aligns two-byte string data on an even offset with a padding byte.
    if ((this.#length + 1 + varintSize(byteLength)) & 1) this.#byte(Tag.Padding);
    this.#byte(Tag.TwoByteString);
    this.#varint(byteLength);
    this.#reserve(byteLength);
    for (let i = 0; i < value.length; i++) {
      this.#view.setUint16(this.#length, value.charCodeAt(i), true);
      this.#length += 2;
    }
  }

  #receiver(value: object): void {
    // A view's buffer goes first, before the view takes its id.
    if (ArrayBuffer.isView(value) && !this.#ids.has(value)) this.#receiver(value.buffer);
    const id = this.#ids.get(value);
    if (id !== undefined) {
      this.#byte(Tag.ObjectReference);
      this.#varint(id);
      return;
    }
    if (typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer)
      cloneError(value);
    this.#ids.set(value, this.#ids.size);
    if (Array.isArray(value)) this.#array(value);
    else if (value instanceof Date) {
      this.#byte(Tag.Date);
      this.#double(value.getTime());
    } else if (value instanceof RegExp) this.#regexp(value);
    else if (value instanceof Map) this.#map(value);
    else if (value instanceof Set) this.#set(value);
    else if (value instanceof ArrayBuffer) this.#arrayBuffer(value);
    else if (ArrayBuffer.isView(value)) this.#arrayBufferView(value);
    else if (value instanceof Error) this.#error(value);
    else if (!this.#boxed(value)) this.#object(value);
  }

  #object(value: object): void {
    if (
      value instanceof Promise ||
      value instanceof WeakMap ||
      value instanceof WeakSet ||
      (typeof WeakRef !== "undefined" && value instanceof WeakRef)
    )
      cloneError(value);
    this.#byte(Tag.BeginObject);
    const count = this.#properties(value, Object.keys(value));
    this.#byte(Tag.EndObject);
    this.#varint(count);
  }

  /** Writes `keys` of `value` with their values; returns how many were written. */
  #properties(value: object, keys: readonly string[]): number {
    for (const key of keys) {
      // Index keys travel as numbers, as V8 keeps them.
      if (ARRAY_INDEX.test(key) && Number(key) <= MAX_ARRAY_INDEX) this.#number(Number(key));
      else this.#string(key);
      this.#value((value as Record<string, unknown>)[key]);
    }
    return keys.length;
  }

  #array(value: unknown[]): void {
    const length = value.length;
    const keys = Object.keys(value);
    // Index keys come first and ascending, so the array has no hole when the last of the first
    // `length` keys is `length - 1`.
    if (length === 0 || (keys.length >= length && keys[length - 1] === String(length - 1))) {
      this.#byte(Tag.BeginDenseArray);
      this.#varint(length);
      for (let i = 0; i < length; i++) this.#value(value[i]);
      const count = this.#properties(value, keys.slice(length));
      this.#byte(Tag.EndDenseArray);
      this.#varint(count);
      this.#varint(length);
      return;
    }
    this.#byte(Tag.BeginSparseArray);
    this.#varint(length);
    const count = this.#properties(value, keys);
    this.#byte(Tag.EndSparseArray);
    this.#varint(count);
    this.#varint(length);
  }

  #regexp(value: RegExp): void {
    this.#byte(Tag.RegExp);
    this.#string(value.source);
    let flags = 0;
    for (const flag of value.flags) {
      const bit = REGEXP_FLAGS.indexOf(flag);
      if (bit >= 0) flags |= 1 << bit;
    }
    this.#varint(flags);
  }

  #map(value: Map<unknown, unknown>): void {
    this.#byte(Tag.BeginMap);
    for (const [k, v] of value) {
      this.#value(k);
      this.#value(v);
    }
    this.#byte(Tag.EndMap);
    this.#varint(value.size * 2);
  }

  #set(value: Set<unknown>): void {
    this.#byte(Tag.BeginSet);
    for (const item of value) this.#value(item);
    this.#byte(Tag.EndSet);
    this.#varint(value.size);
  }

  #arrayBuffer(value: ArrayBuffer): void {
    const resizable = (value as { resizable?: boolean }).resizable === true;
    this.#byte(resizable ? Tag.ResizableArrayBuffer : Tag.ArrayBuffer);
    this.#varint(value.byteLength);
    if (resizable) this.#varint((value as unknown as { maxByteLength: number }).maxByteLength);
    this.#raw(new Uint8Array(value));
  }

  #arrayBufferView(value: ArrayBufferView): void {
    const tag = viewTag(value);
    if (tag === undefined) cloneError(value);
    this.#byte(Tag.ArrayBufferView);
    this.#byte(tag);
    this.#varint(value.byteOffset);
    this.#varint(value.byteLength);
    const resizable = (value.buffer as { resizable?: boolean }).resizable === true;
    this.#varint(resizable ? BACKED_BY_RESIZABLE : 0);
  }

  #error(value: Error): void {
    this.#byte(Tag.Error);
    const prototypeTag = ERROR_TAGS[String(value.name)];
    if (prototypeTag !== undefined) this.#varint(prototypeTag);
    const message = Object.getOwnPropertyDescriptor(value, "message");
    if (message && "value" in message) {
      this.#varint(ErrorTag.Message);
      this.#string(String(message.value));
    }
    const cause = Object.getOwnPropertyDescriptor(value, "cause");
    if (cause && "value" in cause) {
      this.#varint(ErrorTag.Cause);
      this.#value(cause.value);
    }
    const stack = value.stack;
    if (typeof stack === "string") {
      this.#varint(ErrorTag.Stack);
      this.#string(stack);
    }
    this.#varint(ErrorTag.End);
  }

  /** Writes a Boolean, Number, BigInt or String wrapper object; false for anything else. */
  #boxed(value: object): boolean {
    const primitive = unbox(value);
    if (primitive === NOT_BOXED) return false;
    switch (typeof primitive) {
      case "boolean":
        this.#byte(primitive ? Tag.TrueObject : Tag.FalseObject);
        break;
      case "number":
        this.#byte(Tag.NumberObject);
        this.#double(primitive);
        break;
      case "bigint":
        this.#byte(Tag.BigIntObject);
        this.#bigint(primitive);
        break;
      case "string":
        this.#byte(Tag.StringObject);
        this.#string(primitive);
        break;
      default:
        cloneError(value);
    }
    return true;
  }
}

const NOT_BOXED = Symbol("not boxed");

/** The primitive inside a Boolean, Number, BigInt, String or Symbol wrapper object. */
function unbox(value: object): unknown {
  if (
    value instanceof Boolean ||
    value instanceof Number ||
    value instanceof BigInt ||
    value instanceof String ||
    value instanceof Symbol
  )
    return value.valueOf();
  return NOT_BOXED;
}

/** The sub-tag of a typed array or DataView, subclasses (such as Node's Buffer) included. */
function viewTag(value: ArrayBufferView): number | undefined {
  const scope = globalThis as unknown as Record<string, (new () => unknown) | undefined>;
  for (const [tag, name] of VIEWS) {
    const Ctor = scope[name];
    if (Ctor && value instanceof Ctor) return tag;
  }
  return undefined;
}

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

function cloneError(value: unknown): never {
  const shown =
    typeof value === "object" && value !== null
      ? `#<${value.constructor?.name ?? "Object"}>`
      : String(value);
  throw new Error(`${shown} could not be cloned.`);
}
