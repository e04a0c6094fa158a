/**
 * V8's value serialization format (the one `node:v8`, structured clone and Deno KV use) in plain
 * JavaScript, for runtimes without `node:v8`: browsers get it through package.json's `#v8`
 * import. It writes format version 15, which Node 20 and later read, and reads versions 13 to
 * 15, covering everything structured clone carries: primitives (-0, NaN, bigint, one- and
 * two-byte strings), Date, RegExp, plain objects, dense and sparse arrays, Map, Set,
 * ArrayBuffer, typed arrays and DataView, boxed primitives, Error objects, and references to an
 * object already written (shared objects, cycles).
 *
 * Written from the format as V8's `src/objects/value-serializer.cc` defines it; the API is the
 * subset of `node:v8`'s `Serializer` and `Deserializer` that Cellar calls.
 */
import { latin1Decode, utf8Decode } from "./bytes.js";

const VERSION = 15;
const OLDEST_VERSION = 13;

const Tag = {
  Version: 0xff,
  Padding: 0x00,
  VerifyObjectCount: 0x3f, // ?
  TheHole: 0x2d, // -
  Undefined: 0x5f, // _
  Null: 0x30, // 0
  True: 0x54, // T
  False: 0x46, // F
  Int32: 0x49, // I
  Uint32: 0x55, // U
  Double: 0x4e, // N
  BigInt: 0x5a, // Z
  Utf8String: 0x53, // S
  OneByteString: 0x22, // "
  TwoByteString: 0x63, // c
  ObjectReference: 0x5e, // ^
  BeginObject: 0x6f, // o
  EndObject: 0x7b, // {
  BeginSparseArray: 0x61, // a
  EndSparseArray: 0x40, // @
  BeginDenseArray: 0x41, // A
  EndDenseArray: 0x24, // $
  Date: 0x44, // D
  TrueObject: 0x79, // y
  FalseObject: 0x78, // x
  NumberObject: 0x6e, // n
  BigIntObject: 0x7a, // z
  StringObject: 0x73, // s
  RegExp: 0x52, // R
  BeginMap: 0x3b, // ;
  EndMap: 0x3a, // :
  BeginSet: 0x27, // '
  EndSet: 0x2c, // ,
  ArrayBuffer: 0x42, // B
  ResizableArrayBuffer: 0x7e, // ~
  ArrayBufferView: 0x56, // V
  Error: 0x72, // r
} as const;

const ErrorTag = {
  EvalError: 0x45, // E
  RangeError: 0x52, // R
  ReferenceError: 0x46, // F
  SyntaxError: 0x53, // S
  TypeError: 0x54, // T
  UriError: 0x55, // U
  Message: 0x6d, // m
  Cause: 0x63, // c
  Stack: 0x73, // s
  End: 0x2e, // .
} as const;

const ERROR_TAGS: Record<string, number> = {
  EvalError: ErrorTag.EvalError,
  RangeError: ErrorTag.RangeError,
  ReferenceError: ErrorTag.ReferenceError,
  SyntaxError: ErrorTag.SyntaxError,
  TypeError: ErrorTag.TypeError,
  URIError: ErrorTag.UriError,
};
const ERROR_CONSTRUCTORS: Record<number, ErrorConstructor> = {
  [ErrorTag.EvalError]: EvalError,
  [ErrorTag.RangeError]: RangeError,
  [ErrorTag.ReferenceError]: ReferenceError,
  [ErrorTag.SyntaxError]: SyntaxError,
  [ErrorTag.TypeError]: TypeError,
  [ErrorTag.UriError]: URIError,
};

type ViewConstructor = new (buffer: ArrayBuffer, byteOffset: number, length?: number) => unknown;

/** Typed array and DataView sub-tags, and each one's element size. */
const VIEWS: [tag: number, name: string, size: number][] = [
  [0x62, "Int8Array", 1], // b
  [0x42, "Uint8Array", 1], // B
  [0x43, "Uint8ClampedArray", 1], // C
  [0x77, "Int16Array", 2], // w
  [0x57, "Uint16Array", 2], // W
  [0x64, "Int32Array", 4], // d
  [0x44, "Uint32Array", 4], // D
  [0x68, "Float16Array", 2], // h
  [0x66, "Float32Array", 4], // f
  [0x46, "Float64Array", 8], // F
  [0x71, "BigInt64Array", 8], // q
  [0x51, "BigUint64Array", 8], // Q
  [0x3f, "DataView", 1], // ?
];
const VIEW_BY_TAG = new Map(VIEWS.map(([tag, name, size]) => [tag, { name, size }]));

// RegExp flags in V8's bit order: g i m y u s (linear, unused) d v.
const REGEXP_FLAGS = "gimyus_dv";

const LENGTH_TRACKING = 1;
const BACKED_BY_RESIZABLE = 2;

const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;
const MAX_ARRAY_INDEX = 2 ** 32 - 2;

function cloneError(value: unknown): never {
  const shown =
    typeof value === "object" && value !== null
      ? `#<${value.constructor?.name ?? "Object"}>`
      : String(value);
  throw new Error(`${shown} could not be cloned.`);
}

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

function malformed(what: string): never {
  throw new Error(`Unable to deserialize cloned data: ${what}.`);
}

/**
 * Reads values in V8's serialization format, as `node:v8`'s `Deserializer` does.
 *
 * @example
 * const deserializer = new Deserializer(bytes);
 * deserializer.readHeader();
 * const value = deserializer.readValue();
 */
export class Deserializer {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;
  #version = 0;
  readonly #objects: unknown[] = [];

  constructor(data: Uint8Array) {
    // A plain view: a Buffer's `slice` would share memory where a copy is meant.
    this.#bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  /** Reads the header; throws unless it names a format version this reader knows. */
  readHeader(): boolean {
    if (this.#bytes[this.#offset] === Tag.Version) {
      this.#offset++;
      this.#version = this.#varint();
    }
    if (this.#version < OLDEST_VERSION || this.#version > VERSION)
      malformed(`unsupported format version ${this.#version}`);
    return true;
  }

  /** Reads the next value. */
  readValue(): unknown {
    return this.#value();
  }

  #byte(): number {
    if (this.#offset >= this.#bytes.length) malformed("unexpected end of data");
    return this.#bytes[this.#offset++]!;
  }

  #varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = this.#byte();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
      if (scale > 2 ** 56) malformed("varint too long");
    }
  }

  #double(): number {
    if (this.#offset + 8 > this.#bytes.length) malformed("unexpected end of data");
    const value = this.#view.getFloat64(this.#offset, true);
    this.#offset += 8;
    return value;
  }

  #take(length: number): Uint8Array {
    if (this.#offset + length > this.#bytes.length) malformed("unexpected end of data");
    const out = this.#bytes.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return out;
  }

  #tag(): number {
    let tag = this.#byte();
    while (tag === Tag.Padding) tag = this.#byte();
    return tag;
  }

  #peekTag(): number {
    let offset = this.#offset;
    while (this.#bytes[offset] === Tag.Padding) offset++;
    if (offset >= this.#bytes.length) malformed("unexpected end of data");
    return this.#bytes[offset]!;
  }

  #value(): unknown {
    let result = this.#valueOfTag(this.#tag());
    // A view follows its buffer and consumes it, even when the buffer was a reference.
    if (result instanceof ArrayBuffer && this.#offset < this.#bytes.length) {
      if (this.#peekTag() === Tag.ArrayBufferView) {
        this.#tag();
        result = this.#arrayBufferView(result);
      }
    }
    return result;
  }

  #valueOfTag(tag: number): unknown {
    switch (tag) {
      case Tag.VerifyObjectCount:
        this.#varint();
        return this.#value();
      case Tag.Undefined:
        return undefined;
      case Tag.Null:
        return null;
      case Tag.True:
        return true;
      case Tag.False:
        return false;
      case Tag.Int32: {
        const zigzag = this.#varint();
        return zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2;
      }
      case Tag.Uint32:
        return this.#varint();
      case Tag.Double:
        return this.#double();
      case Tag.BigInt:
        return this.#bigint();
      case Tag.Utf8String:
      case Tag.OneByteString:
      case Tag.TwoByteString:
        return this.#stringOfTag(tag);
      case Tag.ObjectReference: {
        const id = this.#varint();
        if (!(id in this.#objects)) malformed(`reference to unknown object ${id}`);
        return this.#objects[id];
      }
      case Tag.BeginObject:
        return this.#object();
      case Tag.BeginDenseArray:
        return this.#denseArray();
      case Tag.BeginSparseArray:
        return this.#sparseArray();
      case Tag.Date:
        return this.#register(new Date(this.#double()));
      case Tag.TrueObject:
        return this.#register(Object(true));
      case Tag.FalseObject:
        return this.#register(Object(false));
      case Tag.NumberObject:
        return this.#register(Object(this.#double()));
      case Tag.BigIntObject:
        return this.#register(Object(this.#bigint()));
      case Tag.StringObject:
        return this.#register(Object(this.#string()));
      case Tag.RegExp:
        return this.#regexp();
      case Tag.BeginMap:
        return this.#map();
      case Tag.BeginSet:
        return this.#set();
      case Tag.ArrayBuffer: {
        const length = this.#varint();
        return this.#register(this.#take(length).slice().buffer);
      }
      case Tag.ResizableArrayBuffer: {
        const length = this.#varint();
        const maxByteLength = this.#varint();
        if (length > maxByteLength) malformed("resizable buffer longer than its maximum");
        const buffer = new (
          ArrayBuffer as new (
            length: number,
            options: { maxByteLength: number },
          ) => ArrayBuffer
        )(length, { maxByteLength });
        new Uint8Array(buffer).set(this.#take(length));
        return this.#register(buffer);
      }
      case Tag.Error:
        return this.#error();
      default:
        malformed(`unknown tag 0x${tag.toString(16)}`);
    }
  }

  #register<T>(value: T): T {
    this.#objects.push(value);
    return value;
  }

  #bigint(): bigint {
    const bitfield = this.#varint();
    const negative = bitfield % 2 === 1;
    const bytes = this.#take(Math.floor(bitfield / 2));
    let magnitude = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) magnitude = (magnitude << 8n) | BigInt(bytes[i]!);
    return negative ? -magnitude : magnitude;
  }

  #string(): string {
    const tag = this.#tag();
    if (tag !== Tag.Utf8String && tag !== Tag.OneByteString && tag !== Tag.TwoByteString)
      malformed("expected a string");
    return this.#stringOfTag(tag);
  }

  #stringOfTag(tag: number): string {
    const length = this.#varint();
    const bytes = this.#take(length);
    if (tag === Tag.OneByteString) return latin1Decode(bytes);
    if (tag === Tag.Utf8String) return utf8Decode(bytes);
    if (length % 2 !== 0) malformed("odd two-byte string length");
    // Code units as they are: a decoder would replace lone surrogates, which strings may hold.
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const units = new Uint16Array(length / 2);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint16(2 * i, true);
    let text = "";
    for (let i = 0; i < units.length; i += 8192) {
      text += String.fromCharCode.apply(null, units.subarray(i, i + 8192) as unknown as number[]);
    }
    return text;
  }

  /** Reads key-value pairs into `target` until `end`; returns how many. */
  #properties(target: object, end: number): number {
    let count = 0;
    while (this.#peekTag() !== end) {
      const key = this.#value();
      if (typeof key !== "string" && typeof key !== "number") malformed("invalid property key");
      const value = this.#value();
      // Defined, not assigned: a "__proto__" key is an own property, as V8 creates it.
      Object.defineProperty(target, String(key), {
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
      count++;
    }
    this.#tag();
    return count;
  }

  #object(): object {
    const object = this.#register({});
    const count = this.#properties(object, Tag.EndObject);
    if (this.#varint() !== count) malformed("object property count mismatch");
    return object;
  }

  #denseArray(): unknown[] {
    const length = this.#varint();
    const array = this.#register(new Array<unknown>(length));
    for (let i = 0; i < length; i++) {
      if (this.#peekTag() === Tag.TheHole) {
        this.#tag();
        continue;
      }
      array[i] = this.#value();
    }
    const count = this.#properties(array, Tag.EndDenseArray);
    if (this.#varint() !== count) malformed("array property count mismatch");
    if (this.#varint() !== length) malformed("array length mismatch");
    return array;
  }

  #sparseArray(): unknown[] {
    const length = this.#varint();
    const array = this.#register(new Array<unknown>(length));
    const count = this.#properties(array, Tag.EndSparseArray);
    if (this.#varint() !== count) malformed("array property count mismatch");
    if (this.#varint() !== length) malformed("array length mismatch");
    return array;
  }

  #regexp(): RegExp {
    const id = this.#objects.length;
    this.#objects.push(undefined);
    const source = this.#string();
    const bits = this.#varint();
    let flags = "";
    for (let bit = 0; bit < REGEXP_FLAGS.length; bit++) {
      if (bits & (1 << bit)) flags += REGEXP_FLAGS[bit];
    }
    let regexp: RegExp;
    try {
      regexp = new RegExp(source, flags.replace("_", ""));
    } catch {
      malformed(`invalid regular expression /${source}/${flags}`);
    }
    this.#objects[id] = regexp;
    return regexp;
  }

  #map(): Map<unknown, unknown> {
    const map = this.#register(new Map<unknown, unknown>());
    let count = 0;
    while (this.#peekTag() !== Tag.EndMap) {
      const key = this.#value();
      map.set(key, this.#value());
      count += 2;
    }
    this.#tag();
    if (this.#varint() !== count) malformed("map length mismatch");
    return map;
  }

  #set(): Set<unknown> {
    const set = this.#register(new Set<unknown>());
    let count = 0;
    while (this.#peekTag() !== Tag.EndSet) {
      set.add(this.#value());
      count++;
    }
    this.#tag();
    if (this.#varint() !== count) malformed("set length mismatch");
    return set;
  }

  #arrayBufferView(buffer: ArrayBuffer): ArrayBufferView {
    const kind = VIEW_BY_TAG.get(this.#byte());
    const byteOffset = this.#varint();
    const byteLength = this.#varint();
    const flags = this.#version >= 14 ? this.#varint() : 0;
    const Ctor = kind && (globalThis as unknown as Record<string, ViewConstructor>)[kind.name];
    if (!kind || !Ctor) malformed("unknown array buffer view type");
    if (byteOffset % kind.size !== 0 || byteLength % kind.size !== 0)
      malformed("misaligned array buffer view");
    if (byteOffset + byteLength > buffer.byteLength) malformed("view outside its buffer");
    const length = kind.name === "DataView" ? byteLength : byteLength / kind.size;
    const view = (
      flags & LENGTH_TRACKING ? new Ctor(buffer, byteOffset) : new Ctor(buffer, byteOffset, length)
    ) as ArrayBufferView;
    return this.#register(view);
  }

  #error(): Error {
    const id = this.#objects.length;
    this.#objects.push(undefined);
    let Ctor: ErrorConstructor = Error;
    let message: string | undefined;
    let stack: string | undefined;
    let cause: { value: unknown } | undefined;
    for (;;) {
      const tag = this.#varint();
      if (tag === ErrorTag.End) break;
      if (tag === ErrorTag.Message) message = this.#string();
      else if (tag === ErrorTag.Stack) stack = this.#string();
      else if (tag === ErrorTag.Cause) cause = { value: this.#value() };
      else if (ERROR_CONSTRUCTORS[tag]) Ctor = ERROR_CONSTRUCTORS[tag];
      else malformed(`unknown error tag 0x${tag.toString(16)}`);
    }
    const error = cause ? new Ctor(message, { cause: cause.value }) : new Ctor(message);
    if (stack !== undefined) {
      Object.defineProperty(error, "stack", {
        value: stack,
        writable: true,
        enumerable: false,
        configurable: true,
      });
    }
    this.#objects[id] = error;
    return error;
  }
}
