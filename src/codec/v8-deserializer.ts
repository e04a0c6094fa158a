/** The reading half of V8's serialization format in JavaScript (see `v8-web.ts`). */
import { latin1Decode, utf8Decode } from "./bytes.js";
import {
  ERROR_CONSTRUCTORS,
  ErrorTag,
  LENGTH_TRACKING,
  OLDEST_VERSION,
  REGEXP_FLAGS,
  Tag,
  VERSION,
  VIEW_BY_TAG,
  type ViewConstructor,
} from "./v8-format.js";

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
