/**
 * Values between KV Connect and Cellar. KV Connect's encodings V8 (1), LE64 (2) and BYTES (3) are
 * Cellar's `v8`, `u64` and `bytes`, so a Deno client reads back exactly the value it wrote and
 * Cellar's own API decodes it as an ordinary value. Cellar's `json` encoding has no KV Connect
 * counterpart: a Deno client reads it re-serialized as a V8 value of the parsed JSON.
 *
 * Deno 2's V8 writes serialization format version 16, which the V8 of Node 20 and 22 refuses to
 * read (it knows up to 15). Version 16 only widened ArrayBuffer lengths and offsets to 64 bits,
 * and they are varints, so below 4 GiB the bytes are those of version 15: a version-16 header is
 * stored as version 15 and both Deno and Node read the value.
 */
import { Serializer } from "node:v8";
import type { RawValue } from "../codec/value.js";
import { KvError } from "../errors.js";
import { ValueEncoding } from "./proto/datapath_pb.js";

export interface ConnectValue {
  readonly data: Uint8Array;
  readonly encoding: ValueEncoding;
}

/** A value a client sent, as Cellar stores it. Throws `INVALID_VALUE` for unknown encodings. */
export function rawFromConnect(value: ConnectValue | undefined, what: string): RawValue {
  if (!value) throw new KvError("INVALID_VALUE", `${what} has no value`);
  switch (value.encoding) {
    case ValueEncoding.VE_V8:
      return { encoding: "v8", data: v8ForNode(value.data) };
    case ValueEncoding.VE_BYTES:
      return { encoding: "bytes", data: Buffer.from(value.data) };
    case ValueEncoding.VE_LE64:
      if (value.data.length !== 8)
        throw new KvError(
          "INVALID_VALUE",
          `${what}: a little-endian u64 is 8 bytes, got ${value.data.length}`,
        );
      return { encoding: "u64", data: Buffer.from(value.data) };
    default:
      throw new KvError("INVALID_VALUE", `${what} has unknown value encoding ${value.encoding}`);
  }
}

const V8_HEADER = 0xff;
const V8_VERSION_16 = 0x10;
const V8_VERSION_15 = 0x0f;

/** A copy of V8-serialized bytes that Node's deserializer reads (see the module comment). */
export function v8ForNode(data: Uint8Array): Buffer {
  const copy = Buffer.from(data);
  if (copy[0] === V8_HEADER && copy[1] === V8_VERSION_16) copy[1] = V8_VERSION_15;
  return copy;
}

/** A stored value as a client reads it. */
export function connectFromRaw(raw: RawValue): ConnectValue {
  switch (raw.encoding) {
    case "v8":
      return { data: raw.data, encoding: ValueEncoding.VE_V8 };
    case "bytes":
      return { data: raw.data, encoding: ValueEncoding.VE_BYTES };
    case "u64":
      return { data: raw.data, encoding: ValueEncoding.VE_LE64 };
    case "json":
      return { data: v8FromJson(raw.data), encoding: ValueEncoding.VE_V8 };
  }
}

function v8FromJson(text: string): Uint8Array {
  const serializer = new Serializer();
  serializer.writeHeader();
  serializer.writeValue(JSON.parse(text));
  return serializer.releaseBuffer();
}

/** The 8-byte little-endian operand of `sum`/`min`/`max`; other encodings are refused. */
export function u64Operand(value: ConnectValue | undefined, type: string): bigint {
  if (!value || value.encoding !== ValueEncoding.VE_LE64 || value.data.length !== 8) {
    throw new KvError(
      "INVALID_MUTATION",
      `'${type}' takes a KvU64 operand (8 bytes, little-endian)`,
    );
  }
  return Buffer.from(value.data.buffer, value.data.byteOffset, 8).readBigUInt64LE(0);
}

/** A versionstamp's 10 raw bytes, from Cellar's 20 hex characters. */
export function versionstampBytes(versionstamp: string): Uint8Array {
  return Buffer.from(versionstamp, "hex");
}

/** Cellar's form of a check's versionstamp: `null` for "absent" (0 bytes), else 20 hex characters. */
export function versionstampFromBytes(bytes: Uint8Array): string | null {
  if (bytes.length === 0) return null;
  if (bytes.length !== 10)
    throw new KvError("INVALID_VERSIONSTAMP", `a versionstamp is 10 bytes, got ${bytes.length}`);
  return Buffer.from(bytes).toString("hex");
}
