/**
 * What the PostgreSQL driver's modules share: statement helpers, pipelining, type parsing and
 * the mapping between table rows and the driver contract's entries.
 */
import pg from "pg";
import { ENCODING_TAG, type RawValue, TAG_ENCODING } from "../../codec/value.js";
import { formatVersionstamp } from "../../codec/versionstamp.js";
import type { StoredEntry } from "../../contract/apply.js";
import type { EntryMeta, RawEntry } from "../../contract/index.js";
import { KvError } from "../../errors.js";

/**
 * Type parsing for the driver's connections only (never pg's global parsers): `bigint` columns
 * hold epoch milliseconds, versions and counts, all below 2^53, so they become numbers; `json`
 * columns stay text, byte for byte as stored, since the value codec parses them itself.
 */
export const TYPES = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === pg.types.builtins.INT8) return (text: string) => Number(text);
    if (oid === pg.types.builtins.JSON) return (text: string) => text;
    return pg.types.getTypeParser(oid, format ?? "text");
  },
};

/** A statement run under a fixed name, so each connection parses and plans it once. */
export type Statement = (...values: unknown[]) => pg.QueryConfig;

export function statement(name: string, text: string): Statement {
  return (...values) => ({ name, text, values });
}

/**
 * Sends every query at once on a pipelining connection and waits for all of them: one round
 * trip. Rejects with the first failure, which aborted the transaction the later ones ran in.
 */
export async function pipeline(
  client: pg.ClientBase,
  queries: readonly pg.QueryConfig[],
): Promise<pg.QueryResult[]> {
  // pg writes each query to the socket on its own; corking makes the pipeline one write, which
  // matters since a write costs about as much as running a small statement.
  const stream = (client as pg.Client).connection?.stream;
  stream?.cork();
  let pending: Promise<pg.QueryResult>[];
  try {
    pending = queries.map((query) => client.query(query));
  } finally {
    stream?.uncork();
  }
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((result) => (result as PromiseFulfilledResult<pg.QueryResult>).value);
}

/** Element types of the arrays the driver sends, with their type OIDs. */
const ELEMENT_OIDS = { bytea: 17, int8: 20, int2: 21, text: 25, json: 114, jsonb: 3802 } as const;
export type ElementType = keyof typeof ELEMENT_OIDS;

/**
 * A one-dimensional array in PostgreSQL's binary format, which node-postgres sends as is (it
 * sends every `Buffer` parameter as binary). Its text format would cost both sides far more:
 * pg quotes and escapes every element (bytea as hex), and the server parses it all back.
 * `int8` elements are safe integers; `json` and `jsonb` elements are JSON text.
 */
export function binaryArray(type: ElementType, values: readonly unknown[]): Buffer {
  let size = 20;
  let nulls = 0;
  for (const value of values) {
    size += 4;
    if (value === null || value === undefined) nulls = 1;
    else if (type === "bytea") size += (value as Uint8Array).length;
    else if (type === "int8") size += 8;
    else if (type === "int2") size += 2;
    else size += Buffer.byteLength(value as string) + (type === "jsonb" ? 1 : 0);
  }
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(1, 0);
  out.writeInt32BE(nulls, 4);
  out.writeInt32BE(ELEMENT_OIDS[type], 8);
  out.writeInt32BE(values.length, 12);
  out.writeInt32BE(1, 16);
  let at = 20;
  for (const value of values) {
    if (value === null || value === undefined) {
      out.writeInt32BE(-1, at);
      at += 4;
    } else if (type === "bytea") {
      const bytes = value as Uint8Array;
      out.writeInt32BE(bytes.length, at);
      out.set(bytes, at + 4);
      at += 4 + bytes.length;
    } else if (type === "int8") {
      const n = value as number;
      out.writeInt32BE(8, at);
      // Two's complement in two halves: exact for every safe integer, negative ones included.
      out.writeInt32BE(Math.floor(n / 2 ** 32), at + 4);
      out.writeUInt32BE(n >>> 0, at + 8);
      at += 12;
    } else if (type === "int2") {
      out.writeInt32BE(2, at);
      out.writeInt16BE(value as number, at + 4);
      at += 6;
    } else {
      // jsonb's binary form is a version byte (1) before the text.
      const lead = type === "jsonb" ? 1 : 0;
      if (lead) out[at + 4] = 1;
      const length = out.write(value as string, at + 4 + lead, "utf8") + lead;
      out.writeInt32BE(length, at);
      at += 4 + length;
    }
  }
  return out;
}

/** SQLSTATEs after which a transaction can simply run again: serialization failure, deadlock. */
export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "40001" || code === "40P01";
}

/** `(expires_at IS NULL OR expires_at > now)` with `now` at the given parameter. */
export const live = (param: number) => `(expires_at IS NULL OR expires_at > $${param})`;

export const BASE_COLUMNS = "key, value_json, value_bin, encoding, vs, expires_at";
export const META_COLUMNS = `${BASE_COLUMNS}, revision, created_at, updated_at, tags, modified_by, comment, data_hash`;

export interface KvRow {
  key: Buffer;
  value_json: string | null;
  value_bin: Buffer | null;
  encoding: number;
  vs: number;
  expires_at: number | null;
  revision?: number;
  created_at?: number;
  updated_at?: number;
  tags?: string | null;
  modified_by?: string | null;
  comment?: string | null;
  data_hash?: string;
}

export function rawValueOf(json: string | null, bin: Buffer | null, encoding: number): RawValue {
  const name = TAG_ENCODING[encoding];
  if (name === undefined)
    throw new KvError("STORAGE_ERROR", `unknown value encoding ${encoding} in the database`);
  if (name === "json") return { encoding: name, data: json ?? "null" };
  return { encoding: name, data: bin ?? Buffer.alloc(0) };
}

/** The two value columns of a stored value: JSON as text, everything else as bytes. */
export function valueColumns(value: RawValue): {
  json: string | null;
  bin: Uint8Array | null;
  encoding: number;
} {
  const encoding = ENCODING_TAG[value.encoding];
  return value.encoding === "json"
    ? { json: value.data, bin: null, encoding }
    : { json: null, bin: value.data, encoding };
}

export function metaOf(row: KvRow): EntryMeta {
  return {
    version: row.revision!,
    createdAt: row.created_at!,
    updatedAt: row.updated_at!,
    tags: row.tags ? (JSON.parse(row.tags) as string[]) : [],
    modifiedBy: row.modified_by ?? null,
    comment: row.comment ?? null,
    dataHash: row.data_hash!,
  };
}

export function entryOf(row: KvRow, withMeta: boolean): RawEntry {
  const entry = {
    key: row.key,
    value: rawValueOf(row.value_json, row.value_bin, row.encoding),
    versionstamp: formatVersionstamp(row.vs),
    expiresAt: row.expires_at,
  };
  return withMeta ? { ...entry, meta: metaOf(row) } : entry;
}

/** Stands for a value a write did not need to read (see `needsValue`). */
export const UNREAD: RawValue = { encoding: "bytes", data: new Uint8Array(0) };

/** A stored row as `applyMutation` takes it; its value is {@link UNREAD} unless it was selected. */
export function storedOf(row: KvRow): StoredEntry {
  const selected = row.value_json !== null || row.value_bin !== null;
  return {
    value: selected ? rawValueOf(row.value_json, row.value_bin, row.encoding) : UNREAD,
    versionstamp: formatVersionstamp(row.vs),
    expiresAt: row.expires_at,
    meta: metaOf(row),
  };
}

/** Keys as map ids: one latin1 character per byte, so equal bytes give equal strings. */

/** PostgreSQL text cannot hold U+0000, which the other drivers store: refuse it up front. */
export function assertStorableText(what: string, text: string | undefined): void {
  if (text?.includes("\u0000")) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `${what} contains a NUL character, which PostgreSQL cannot store`,
    );
  }
}
