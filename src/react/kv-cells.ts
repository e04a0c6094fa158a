/**
 * Cells over a `Kv` (embedded or remote): a key, or a range, read once and then followed by a
 * subscription to its events, merged by versionstamp (`reconcile.ts`, `list-state.ts`).
 *
 * Reads and subscription never leave a gap: the subscription is made first, then the
 * database's head is read (a remote client answers it once its change stream is connected),
 * then the key or range. Every commit after the head reaches the subscription; every commit up
 * to it is in the read.
 */
import { encodeKey, type KvKey, keyId } from "../codec/key.js";
import type { KvEvent, KvPattern } from "../core/events/index.js";
import type { Kv } from "../core/kv.js";
import type { KvEntryMaybe, KvListSelector } from "../core/types.js";
import type { KvError } from "../errors.js";
import { Cell, type CellHost } from "./cell.js";
import { type ListShape, ListState, patternOf, rangeOf } from "./list-state.js";
import { type Overlay, shownOverlay } from "./overlays.js";
import { absent, KeyState, type LiveEntry } from "./reconcile.js";

/** What `useValue` returns: the entry shown, and whether it is still loading or failed. */
export type ValueSnapshot<T = unknown> = LiveEntry<T> & {
  /** True until the first read (or event) arrived. */
  readonly loading: boolean;
  /** Why the last read failed, until one succeeds. */
  readonly error: Error | null;
};

/** What `useList` returns. */
export interface ListSnapshot<T = unknown> {
  /** The range's entries in list order (at most `limit`), optimistic writes applied. */
  readonly entries: readonly LiveEntry<T>[];
  readonly loading: boolean;
  readonly error: Error | null;
}

/** What a `Kv` cell's registry gives it. */
export interface KvCellHost extends CellHost {
  readonly kv: Kv;
  /** The database's latest versionstamp, read after every subscription made so far. */
  head(): Promise<string>;
  /** The overlays of optimistic writes. */
  readonly overlays: readonly Overlay[];
  /** A cell's view changed: overlays it held may be done. */
  settled(): void;
}

const RETRY_MS = [250, 1000, 4000, 10_000];

/** The part of an event a cell keeps: the entry without its metadata. */
function plain<T>(event: KvEvent<T>): KvEntryMaybe<T> | null {
  const { entry } = event;
  return entry && { key: entry.key, value: entry.value, versionstamp: entry.versionstamp };
}

/** What both kinds of `Kv` cell share: the subscription, reads, retries on failure. */
export abstract class KvCell<S> extends Cell<S> {
  #unsubscribe: (() => void) | null = null;
  #reading = false;
  #again = false;
  #failures = 0;
  #retry: ReturnType<typeof setTimeout> | null = null;
  protected error: Error | null = null;

  constructor(
    protected override readonly host: KvCellHost,
    id: string,
    initial: S,
  ) {
    super(host, id, initial);
  }

  /** Whether the cell covers key `id`. */
  abstract covers(id: string): boolean;
  /** The versionstamp up to which the cell knows key `id`. */
  abstract asOf(id: string): string;
  /** Builds and shows the snapshot from what is known (and the overlays). */
  abstract render(): void;
  protected abstract pattern(): KvPattern;
  protected abstract event(event: KvEvent<unknown>): void;
  /** Reads the key or range; `head` was read before it started. */
  protected abstract read(head: string): Promise<void>;

  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.host.kv.subscribe(this.pattern(), (event) => this.event(event), {
      onError: (error) => this.#lost(error),
    });
    void this.reread();
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
  }

  /** Reads again (one read at a time; a request during one runs once after it). */
  async reread(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    try {
      do {
        this.#again = false;
        await this.read(await this.host.head());
      } while (this.#again);
      this.error = null;
      this.#failures = 0;
    } catch (error) {
      this.error = error instanceof Error ? error : new Error(String(error));
      this.failLoad(this.error);
      this.#scheduleRetry();
    } finally {
      this.#reading = false;
    }
    this.render();
  }

  #scheduleRetry(): void {
    if (!this.#unsubscribe || this.#retry) return;
    const delay = RETRY_MS[Math.min(this.#failures++, RETRY_MS.length - 1)]!;
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.#unsubscribe) void this.reread();
    }, delay);
    (this.#retry as { unref?: () => void }).unref?.();
  }

  /** The subscription ended (the change log no longer reached it, or the database closed). */
  #lost(error: KvError): void {
    this.#unsubscribe = null;
    this.error = error;
    this.failLoad(error);
    this.render();
    if (error.code !== "DATABASE_CLOSED" && this.watched) this.start();
  }
}

/** One key (`useValue`). */
export class KvValueCell<T = unknown> extends KvCell<ValueSnapshot<T>> {
  readonly #state: KeyState<T>;
  #shown: LiveEntry<T> | undefined;

  constructor(
    host: KvCellHost,
    id: string,
    readonly key: KvKey,
    readonly keyId: string,
    initial?: KvEntryMaybe<T>,
  ) {
    const state = new KeyState<T>(key);
    if (initial) state.read("", initial);
    const entry = state.entry;
    super(host, id, { ...(entry ?? absent<T>(key)), loading: entry === undefined, error: null });
    this.#state = state;
    this.#shown = entry;
  }

  covers(id: string): boolean {
    return id === this.keyId;
  }

  asOf(): string {
    return this.#state.asOf;
  }

  protected loaded(): boolean {
    return this.#state.entry !== undefined;
  }

  protected pattern(): KvKey {
    return this.key;
  }

  protected event(event: KvEvent<unknown>): void {
    if (this.#state.event(event.versionstamp, plain(event as KvEvent<T>))) this.render();
  }

  protected async read(head: string): Promise<void> {
    this.#state.read(head, await this.host.kv.get<T>(this.key));
  }

  render(): void {
    const stored = this.#state.entry;
    const overlay = shownOverlay(this.host.overlays, this.keyId, this.#state.asOf, false);
    const shown = overlay ? overlay.entryOver<T>(stored?.versionstamp ?? null) : stored;
    const loading = stored === undefined && this.error === null;
    const current = this.getSnapshot();
    if (shown !== this.#shown || current.loading !== loading || current.error !== this.error) {
      this.#shown = shown;
      this.publish({ ...(shown ?? absent<T>(this.key)), loading, error: this.error });
    } else {
      this.publish(current);
    }
    this.host.settled();
  }
}

/** A range of keys (`useList`). */
export class KvListCell<T = unknown> extends KvCell<ListSnapshot<T>> {
  readonly #state: ListState<T>;

  constructor(
    host: KvCellHost,
    id: string,
    readonly selector: KvListSelector,
    readonly shape: ListShape,
  ) {
    super(host, id, { entries: [], loading: true, error: null });
    this.#state = new ListState<T>(rangeOf(selector), shape);
  }

  covers(id: string): boolean {
    return this.#state.inRange(id);
  }

  asOf(id: string): string {
    return this.#state.asOf(id);
  }

  protected loaded(): boolean {
    return this.#state.loaded;
  }

  protected pattern(): KvPattern {
    return patternOf(this.selector);
  }

  protected event(event: KvEvent<unknown>): void {
    const id = keyId(encodeKey(event.key));
    if (this.#state.event(id, event.versionstamp, plain(event as KvEvent<T>))) this.render();
  }

  protected async read(head: string): Promise<void> {
    const { limit, reverse } = this.shape;
    const entries: KvEntryMaybe<T>[] = [];
    const options = { ...(limit !== undefined && { limit }), ...(reverse && { reverse }) };
    for await (const entry of this.host.kv.list<T>(this.selector, options)) entries.push(entry);
    this.#state.read(head, entries, limit === undefined || entries.length < limit);
  }

  render(): void {
    const overlays = new Map<string, LiveEntry<T> | null>();
    for (const overlay of this.host.overlays) {
      if (overlay.typed || !this.#state.inRange(overlay.id) || overlays.has(overlay.id)) continue;
      const shown = shownOverlay(this.host.overlays, overlay.id, this.asOf(overlay.id), false);
      if (!shown) continue;
      overlays.set(overlay.id, shown.deleted ? null : shown.entryOver<T>(null));
    }
    const entries = this.#state.view(overlays);
    const current = this.getSnapshot();
    const loading = !this.#state.loaded && this.error === null;
    const same =
      entries.length === current.entries.length &&
      entries.every((entry, i) => entry === current.entries[i]);
    if (same && current.loading === loading && current.error === this.error) {
      this.publish(current);
    } else {
      this.publish({ entries: same ? current.entries : entries, loading, error: this.error });
    }
    if (this.#state.loaded && this.#state.short()) void this.reread();
    this.host.settled();
  }
}
