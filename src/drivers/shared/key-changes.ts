/**
 * What a commit did to each key, as the change feed reports it (`KeyChange`): one rule for every
 * driver, so the live feed and the log agree to the field on memory, SQLite and PostgreSQL.
 */
import { compareBytes } from "../../codec/key.js";
import { isLive, type StoredEntry } from "../../contract/apply.js";
import type { ChangeType, EntryMeta, KeyChange, RawEntry } from "../../contract/index.js";

const entryOf = (key: Uint8Array, stored: StoredEntry): RawEntry => ({
  key,
  value: stored.value,
  versionstamp: stored.versionstamp,
  expiresAt: stored.expiresAt,
  meta: stored.meta,
});

/** A key's change as stored entries, before it is reported (see {@link toKeyChange}). */
export interface StoredChange {
  readonly type: ChangeType;
  readonly entry: StoredEntry | null;
  readonly previous: StoredEntry | null;
}

/**
 * The change a commit at `now` made to a key that held `before` (expired or not) and now holds
 * `after`; `null` when nothing a reader could see changed (a delete of an absent or expired key).
 * For the expiry sweeper (`expiry`), the removal of `before` is an `expire`.
 */
export function storedChange(
  before: StoredEntry | null,
  after: StoredEntry | null,
  now: number,
  expiry = false,
): StoredChange | null {
  const previous = before && (expiry || isLive(before.expiresAt, now)) ? before : null;
  if (after) return { type: "set", entry: after, previous };
  if (!previous) return null;
  return { type: expiry ? "expire" : "delete", entry: null, previous };
}

/** A stored change as the change feed reports it. */
export function toKeyChange(key: Uint8Array, change: StoredChange): KeyChange {
  return {
    key,
    type: change.type,
    entry: change.entry && entryOf(key, change.entry),
    previous: change.previous && entryOf(key, change.previous),
  };
}

/** {@link storedChange} as the change feed reports it. */
export function keyChange(
  key: Uint8Array,
  before: StoredEntry | null,
  after: StoredEntry | null,
  now: number,
): KeyChange | null {
  const change = storedChange(before, after, now);
  return change && toKeyChange(key, change);
}

/** The change the expiry sweeper makes removing `expired`. */
export function expiryChange(key: Uint8Array, expired: StoredEntry): KeyChange {
  return toKeyChange(key, { type: "expire", entry: null, previous: expired });
}

/** Changes in key byte order, as `ChangeEvent.entries` lists them. */
export function inKeyOrder(changes: KeyChange[]): KeyChange[] {
  return changes.sort((a, b) => compareBytes(a.key, b.key));
}

/** The numeric code a log row stores for a change's type. */
export const CHANGE_TYPE_CODE = { set: 0, delete: 1, expire: 2 } as const;
export const CHANGE_TYPES = ["set", "delete", "expire"] as const;

/** Metadata as a log row stores it: one JSON text. */
export const metaToText = (meta: EntryMeta): string => JSON.stringify(meta);
export const metaFromText = (text: string): EntryMeta => JSON.parse(text) as EntryMeta;
