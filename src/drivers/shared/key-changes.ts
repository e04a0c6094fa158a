/**
 * What a commit did to each key, as the change feed reports it (`KeyChange`): one rule for every
 * driver, so the live feed and the log agree to the field on memory, SQLite and PostgreSQL.
 */
import { compareBytes } from "../../codec/key.js";
import { isLive, type StoredEntry } from "../../contract/apply.js";
import type { EntryMeta, KeyChange, RawEntry } from "../../contract/index.js";

const entryOf = (key: Uint8Array, stored: StoredEntry): RawEntry => ({
  key,
  value: stored.value,
  versionstamp: stored.versionstamp,
  expiresAt: stored.expiresAt,
  meta: stored.meta,
});

/**
 * The change a commit at `now` made to `key`, which held `before` (expired or not) and now holds
 * `after`; `null` when nothing a reader could see changed (a delete of an absent or expired key).
 */
export function keyChange(
  key: Uint8Array,
  before: StoredEntry | null,
  after: StoredEntry | null,
  now: number,
): KeyChange | null {
  const previous = before && isLive(before.expiresAt, now) ? entryOf(key, before) : null;
  if (after) return { key, type: "set", entry: entryOf(key, after), previous };
  return previous ? { key, type: "delete", entry: null, previous } : null;
}

/** The change the expiry sweeper makes removing `expired`. */
export function expiryChange(key: Uint8Array, expired: StoredEntry): KeyChange {
  return { key, type: "expire", entry: null, previous: entryOf(key, expired) };
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
