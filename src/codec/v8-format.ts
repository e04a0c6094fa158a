/**
 * The tags and tables of V8's value serialization format, as `src/objects/value-serializer.cc`
 * in V8 defines them, shared by `v8-serializer.ts` and `v8-deserializer.ts`.
 */

export const VERSION = 15;
export const OLDEST_VERSION = 13;

export const Tag = {
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

export const ErrorTag = {
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

export const ERROR_TAGS: Record<string, number> = {
  EvalError: ErrorTag.EvalError,
  RangeError: ErrorTag.RangeError,
  ReferenceError: ErrorTag.ReferenceError,
  SyntaxError: ErrorTag.SyntaxError,
  TypeError: ErrorTag.TypeError,
  URIError: ErrorTag.UriError,
};
export const ERROR_CONSTRUCTORS: Record<number, ErrorConstructor> = {
  [ErrorTag.EvalError]: EvalError,
  [ErrorTag.RangeError]: RangeError,
  [ErrorTag.ReferenceError]: ReferenceError,
  [ErrorTag.SyntaxError]: SyntaxError,
  [ErrorTag.TypeError]: TypeError,
  [ErrorTag.UriError]: URIError,
};

export type ViewConstructor = new (
  buffer: ArrayBuffer,
  byteOffset: number,
  length?: number,
) => unknown;

/** Typed array and DataView sub-tags, and each one's element size. */
export const VIEWS: [tag: number, name: string, size: number][] = [
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
export const VIEW_BY_TAG = new Map(VIEWS.map(([tag, name, size]) => [tag, { name, size }]));

// RegExp flags in V8's bit order: g i m y u s (linear, unused) d v.
export const REGEXP_FLAGS = "gimyus_dv";

export const LENGTH_TRACKING = 1;
export const BACKED_BY_RESIZABLE = 2;

export const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;
export const MAX_ARRAY_INDEX = 2 ** 32 - 2;
