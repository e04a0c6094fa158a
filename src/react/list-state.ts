/**
 * Version-aware reconciliation of a range of keys (what `useList` shows): each key is merged as
 * `reconcile.ts` merges one, and a read of the range also says which keys were absent when it
 * ran. With a `limit`, a read that came back full covers the range only up to its last key (the
 * window): an entry an event adds past it is kept but not shown, since keys between may exist.
 * Keys are compared as their encoded bytes (`keyId`), which order as keys do.
 */
import { encodeKey, type KvKey, keyId } from "../codec/key.js";
import { ANY, type KvPattern, REST } from "../core/events/pattern.js";
import type { KvEntryMaybe, KvListSelector } from "../core/types.js";
import { type LiveEntry, later, liveOf, NOTHING } from "./reconcile.js";

/** A selector as the ids of its bounds: `start <= id < end`. */
export interface IdRange {
  readonly start: string;
  readonly end: string;
}

/** The ids a selector covers, with `list`'s semantics (a prefix's own key is not in it). */
export function rangeOf(selector: KvListSelector): IdRange {
  const { prefix, start, end } = selector as { prefix?: KvKey; start?: KvKey; end?: KvKey };
  if (prefix !== undefined) {
    const base = keyId(encodeKey(prefix));
    return {
      start: start === undefined ? `${base}\u0000` : keyId(encodeKey(start)),
      end: end === undefined ? `${base}\u00ff` : keyId(encodeKey(end)),
    };
  }
  return { start: keyId(encodeKey(start ?? [])), end: keyId(encodeKey(end ?? [])) };
}

/** The narrowest event pattern that covers a selector; events are filtered by range after it. */
export function patternOf(selector: KvListSelector): KvPattern {
  const { prefix, start, end } = selector as { prefix?: KvKey; start?: KvKey; end?: KvKey };
  if (prefix !== undefined) return [...prefix, ANY, REST];
  const common: KvKey[number][] = [];
  const a = start ?? [];
  const b = end ?? [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (keyId(encodeKey([a[i]!])) !== keyId(encodeKey([b[i]!]))) break;
    common.push(a[i]!);
  }
  return [...common, REST];
}

/** What is known of one key of the range, and as of which versionstamp. */
interface Known<T> {
  readonly entry: LiveEntry<T> | null;
  readonly asOf: string;
}

export interface ListShape {
  readonly limit?: number | undefined;
  readonly reverse?: boolean | undefined;
}

export class ListState<T = unknown> {
  readonly #known = new Map<string, Known<T>>();
  /** The last read's head: a key of the window it did not return was absent as of it. */
  #asOf = NOTHING;
  /** The id of the last key a full read returned; `null` when the window is the whole range. */
  #boundary: string | null = null;
  #loaded = false;

  constructor(
    readonly range: IdRange,
    readonly shape: ListShape = {},
  ) {}

  get loaded(): boolean {
    return this.#loaded;
  }

  /** Whether `id` lies in the selector's range. */
  inRange(id: string): boolean {
    return id >= this.range.start && id < this.range.end;
  }

  /** Whether `id` lies in the part of the range the last read covered. */
  inWindow(id: string): boolean {
    if (!this.inRange(id)) return false;
    if (this.#boundary === null) return true;
    return this.shape.reverse ? id >= this.#boundary : id <= this.#boundary;
  }

  /** The versionstamp up to which key `id` is known. */
  asOf(id: string): string {
    const known = this.#known.get(id)?.asOf ?? NOTHING;
    const read = this.#loaded && this.inWindow(id) ? this.#asOf : NOTHING;
    return later(known, read);
  }

  /** A commit's entry (`null`: deleted) for key `id` at `versionstamp`. True if the window changed. */
  event(id: string, versionstamp: string, entry: KvEntryMaybe<T> | null): boolean {
    if (!this.inRange(id) || versionstamp <= this.asOf(id)) return false;
    const before = this.#known.get(id)?.entry ?? null;
    const after = entry && entry.versionstamp !== null ? liveOf(entry) : null;
    this.#known.set(id, { entry: after, asOf: versionstamp });
    return this.#loaded && this.inWindow(id) && (before !== null || after !== null);
  }

  /**
   * A read of the range started when the database was at `head`: `entries` in list order, and
   * whether they are all the range holds (`complete`), rather than the first `limit`.
   */
  read(head: string, entries: readonly KvEntryMaybe<T>[], complete: boolean): void {
    const returned = new Set<string>();
    let last: string | null = null;
    for (const entry of entries) {
      const id = keyId(encodeKey(entry.key));
      returned.add(id);
      last = id;
      this.#merge(id, head, entry);
    }
    this.#boundary = complete ? null : last;
    this.#asOf = later(head, this.#asOf);
    this.#loaded = true;
    for (const [id, known] of this.#known) {
      if (known.entry === null) {
        // A tombstone only guards against this read: the next one starts after it.
        this.#known.delete(id);
      } else if (!returned.has(id) && this.inWindow(id) && head > known.asOf) {
        this.#known.delete(id);
      }
    }
  }

  #merge(id: string, head: string, entry: KvEntryMaybe<T>): void {
    const found = entry.versionstamp;
    if (found === null) return;
    const known = this.#known.get(id);
    const position = later(found, head);
    if (known && position <= known.asOf) return;
    const shown = known?.entry?.versionstamp ?? null;
    if (shown !== null && found < shown) return;
    this.#known.set(id, {
      entry: shown === found ? known!.entry : liveOf(entry),
      asOf: later(known?.asOf ?? NOTHING, position),
    });
  }

  /**
   * The entries the list shows: the window's, with `overlays` (id to the optimistic entry, or
   * `null` for an optimistic delete) applied, in list order, at most `limit`.
   */
  view(overlays?: ReadonlyMap<string, LiveEntry<T> | null>): LiveEntry<T>[] {
    const shown = new Map<string, LiveEntry<T>>();
    for (const [id, known] of this.#known) {
      if (known.entry && this.inWindow(id)) shown.set(id, known.entry);
    }
    for (const [id, entry] of overlays ?? []) {
      if (!this.inWindow(id)) continue;
      if (entry) shown.set(id, entry);
      else shown.delete(id);
    }
    const ids = [...shown.keys()].sort();
    if (this.shape.reverse) ids.reverse();
    const limit = this.shape.limit ?? ids.length;
    return ids.slice(0, limit).map((id) => shown.get(id)!);
  }

  /** Whether the window holds fewer than `limit` entries while the range may hold more. */
  short(): boolean {
    if (this.#boundary === null) return false;
    let held = 0;
    for (const [id, known] of this.#known) if (known.entry && this.inWindow(id)) held++;
    return held < (this.shape.limit ?? Number.POSITIVE_INFINITY);
  }
}
