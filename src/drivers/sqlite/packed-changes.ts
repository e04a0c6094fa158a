/**
 * The change log's row format (schema 4): one row per commit, its key changes packed in one
 * blob, so a commit of 500 keys costs one log insert rather than 500, and a key's metadata is a
 * few bytes (see `metaToLog`) rather than a JSON object with a hash the value gives back.
 *
 * Layout, numbers as unsigned LEB128 varints unless said:
 *
 *     count
 *     per written key, in the order the commit wrote them:
 *       flags (1 byte)  bits 0–1: type (0 set, 1 delete, 2 expire, 3 nothing a reader could see)
 *                       bit 2: an entry follows; bit 3: the previous entry follows
 *       key             length, bytes
 *       entry           encoding (1 byte), value length, value bytes, expiry, meta
 *       previous        versionstamp, then as entry
 *
 * `expiry` is 0 for none, else 1 + the expiry time in ms; `meta` is a length and UTF-8 text.
 * A written key whose visible state did not change (a delete of an absent key) has neither
 * entry nor previous: the change event lists it in `keys` only.
 */
import { ENCODING_TAG, type RawValue } from "../../codec/value.js";
import { parseVersionstamp } from "../../codec/versionstamp.js";
import type { EntryMeta } from "../../contract/index.js";
import { KvError } from "../../errors.js";
import { CHANGE_TYPE_CODE, CHANGE_TYPES, type StoredChange } from "../shared/key-changes.js";

/** One written key as the log holds it, before its entries are made whole (hash, key). */
export interface PackedEntry {
  readonly value: Buffer;
  readonly encoding: number;
  readonly expiresAt: number | null;
  readonly meta: string;
}

export interface PackedChange {
  readonly key: Buffer;
  /** `null`: the key was written but nothing a reader could see changed. */
  readonly type: (typeof CHANGE_TYPES)[number] | null;
  readonly entry: PackedEntry | null;
  readonly previous: (PackedEntry & { readonly versionstamp: number }) | null;
}

const NOTHING = 3;
const HAS_ENTRY = 4;
const HAS_PREVIOUS = 8;

/** Grows as it is written. */
class Writer {
  #buffer = Buffer.allocUnsafe(256);
  #length = 0;

  #reserve(n: number): void {
    if (this.#length + n <= this.#buffer.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buffer.length * 2, this.#length + n));
    this.#buffer.copy(next, 0, 0, this.#length);
    this.#buffer = next;
  }

  byte(value: number): void {
    this.#reserve(1);
    this.#buffer[this.#length++] = value;
  }

  uint(value: number): void {
    this.#reserve(8);
    let rest = value;
    while (rest >= 0x80) {
      this.#buffer[this.#length++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.#buffer[this.#length++] = rest;
  }

  bytes(value: Uint8Array): void {
    this.uint(value.length);
    this.#reserve(value.length);
    this.#buffer.set(value, this.#length);
    this.#length += value.length;
  }

  text(value: string): void {
    const length = Buffer.byteLength(value);
    this.uint(length);
    this.#reserve(length);
    this.#length += this.#buffer.write(value, this.#length);
  }

  done(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }
}

function writeEntry(
  out: Writer,
  entry: { value: RawValue; expiresAt: number | null; meta: EntryMeta },
): void {
  out.byte(ENCODING_TAG[entry.value.encoding]);
  const data = entry.value.data;
  if (typeof data === "string") out.text(data);
  else out.bytes(data);
  out.uint(entry.expiresAt === null ? 0 : entry.expiresAt + 1);
  out.text(metaToLog(entry.meta));
}

/** A commit's written keys, each with the change it made (null: none a reader could see). */
export function packChanges(written: readonly [Uint8Array, StoredChange | null][]): Buffer {
  const out = new Writer();
  out.uint(written.length);
  for (const [key, change] of written) {
    const entry = change?.entry ?? null;
    const previous = change?.previous ?? null;
    out.byte(
      (change ? CHANGE_TYPE_CODE[change.type] : NOTHING) |
        (entry ? HAS_ENTRY : 0) |
        (previous ? HAS_PREVIOUS : 0),
    );
    out.bytes(key);
    if (entry) writeEntry(out, entry);
    if (previous) {
      out.uint(parseVersionstamp(previous.versionstamp));
      writeEntry(out, previous);
    }
  }
  return out.done();
}

/** {@link packChanges} undone; throws STORAGE_ERROR on bytes it did not write. */
export function unpackChanges(packed: Buffer): PackedChange[] {
  let at = 0;
  const fail = (): never => {
    throw new KvError("STORAGE_ERROR", "a change-log row of the file is malformed");
  };
  const byte = () => (at < packed.length ? packed[at++]! : fail());
  const uint = () => {
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
      if (scale > 2 ** 56) fail();
    }
  };
  const bytes = () => {
    const length = uint();
    if (at + length > packed.length) fail();
    at += length;
    return packed.subarray(at - length, at);
  };
  const entry = (): PackedEntry => {
    const encoding = byte();
    const value = bytes();
    const expiry = uint();
    const meta = bytes().toString("utf8");
    return { value, encoding, expiresAt: expiry === 0 ? null : expiry - 1, meta };
  };
  const count = uint();
  const changes: PackedChange[] = [];
  for (let i = 0; i < count; i++) {
    const flags = byte();
    const key = bytes();
    const type = flags & 3;
    const made = flags & HAS_ENTRY ? entry() : null;
    let previous: PackedChange["previous"] = null;
    if (flags & HAS_PREVIOUS) {
      const versionstamp = uint();
      previous = { ...entry(), versionstamp };
    }
    changes.push({
      key,
      type: type === NOTHING ? null : CHANGE_TYPES[type]!,
      entry: made,
      previous,
    });
  }
  if (at !== packed.length) fail();
  return changes;
}

/**
 * Metadata as a log row stores it: `[version, updatedAt, createdAt, tags, modifiedBy, comment]`
 * as JSON, `createdAt` null when it equals `updatedAt`, trailing nulls left out, and no hash:
 * the logged value gives it back.
 */
export function metaToLog(meta: EntryMeta): string {
  const fields: unknown[] = [
    meta.version,
    meta.updatedAt,
    meta.createdAt === meta.updatedAt ? null : meta.createdAt,
    meta.tags.length > 0 ? meta.tags : null,
    meta.modifiedBy,
    meta.comment,
  ];
  while (fields.at(-1) === null) fields.pop();
  return JSON.stringify(fields);
}

/** {@link metaToLog}'s text back as metadata, with `dataHash` the logged value's. */
export function metaFromLog(text: string, dataHash: string): EntryMeta {
  const [version, updatedAt, createdAt, tags, modifiedBy, comment] = JSON.parse(text) as [
    number,
    number,
    number?,
    string[]?,
    string?,
    string?,
  ];
  return {
    version,
    createdAt: createdAt ?? updatedAt,
    updatedAt,
    tags: tags ?? [],
    modifiedBy: modifiedBy ?? null,
    comment: comment ?? null,
    dataHash,
  };
}
