/**
 * Version-aware reconciliation of one key: what a component shows, merged from reads and
 * events that may arrive in any order. Versionstamps are fixed-width hex strings, so they
 * compare as strings.
 *
 * The state knows the key as of a versionstamp (`asOf`): every commit up to it is reflected.
 * - An event (a commit's entry for the key, `null` after a delete or an expiry) at versionstamp
 *   `V` is newer only when `V > asOf`; a delete carries its event's versionstamp.
 * - A read started after the database was at `head` reflects every commit up to `head`: an
 *   entry it returns with versionstamp `R` is newer when `max(head, R) > asOf`; a key it finds
 *   absent is newer when `head > asOf` (its own commit is unknown: at least `head`).
 *
 * So each change shown is known as of a later versionstamp than the one before, and an entry
 * shown never has an older versionstamp than one shown before it: a component never goes back
 * to an older version, and ends on the newest once the newest event or a later read arrived.
 * (A read that finds the key absent says only that it was absent at some commit after `head`.)
 */
import type { KvKey } from "../codec/key.js";
import type { KvEntryMaybe } from "../core/types.js";
import type { ClientEntry } from "../offline/types.js";

/**
 * An entry as the hooks show it: a `KvEntryMaybe` with `exists` (a key may hold `null`) and
 * `pending`, true while it shows an optimistic write the server has not answered yet (then
 * `versionstamp` is the server's version it was made on). The shape a client store's view has.
 */
export type LiveEntry<T = unknown> = ClientEntry<T>;

/** Nothing known yet: below every versionstamp. */
export const NOTHING = "";

/** The later of two versionstamps. */
export function later(a: string, b: string): string {
  if (a >= b) return a;
  return b;
}

/** The absent entry of `key`. */
export function absent<T>(key: KvKey): LiveEntry<T> {
  return { key, exists: false, value: null, versionstamp: null, pending: false };
}

/** A stored entry as a shown one. */
export function liveOf<T>(entry: KvEntryMaybe<T>): LiveEntry<T> {
  if (entry.versionstamp === null) return absent(entry.key);
  return entry.metadata
    ? {
        key: entry.key,
        exists: true,
        value: entry.value,
        versionstamp: entry.versionstamp,
        pending: false,
        metadata: entry.metadata,
      }
    : {
        key: entry.key,
        exists: true,
        value: entry.value,
        versionstamp: entry.versionstamp,
        pending: false,
      };
}

/** One key's reconciled state. `entry` is `undefined` until a read or an event arrived. */
export class KeyState<T = unknown> {
  entry: LiveEntry<T> | undefined = undefined;
  asOf: string = NOTHING;

  constructor(readonly key: KvKey) {}

  /** A commit's entry for the key at `versionstamp` (`null`: deleted or expired). True if shown. */
  event(versionstamp: string, entry: KvEntryMaybe<T> | null): boolean {
    if (versionstamp <= this.asOf) return false;
    this.asOf = versionstamp;
    this.entry = entry && entry.versionstamp !== null ? liveOf(entry) : absent(this.key);
    return true;
  }

  /** A read's result, the read started when the database was at `head`. True if shown. */
  read(head: string, entry: KvEntryMaybe<T>): boolean {
    const found = entry.versionstamp;
    if (found === null) {
      if (this.entry !== undefined && head <= this.asOf) return false;
      this.asOf = later(head, this.asOf);
      if (this.entry?.versionstamp === null) return false;
      this.entry = absent(this.key);
      return true;
    }
    const position = later(found, head);
    if (this.entry !== undefined && position <= this.asOf) return false;
    // A consistent read never returns an entry older than the state shown: refuse one that would.
    if (this.entry !== undefined && found < this.position) return false;
    this.asOf = later(position, this.asOf);
    if (this.entry?.versionstamp === found) return false;
    this.entry = liveOf(entry);
    return true;
  }

  /** Where the shown state stands: its entry's versionstamp, or for an absent key `asOf`. */
  get position(): string {
    return this.entry?.versionstamp ?? this.asOf;
  }
}
