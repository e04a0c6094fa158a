/**
 * Cells over a client store: its view is read synchronously (`peek`, `peekList`) and changes
 * are announced synchronously after each change of it, so a snapshot is the view itself. The
 * store keeps a write shown until the server's entry for it (or a later one) arrives, so what
 * it shows is already reconciled; optimistic overlays are not needed on it.
 */
import type { KvKey } from "../codec/key.js";
import type { KvListSelector, KvPattern } from "../offline/types.js";
import { Cell, type CellHost } from "./cell.js";
import type { ListSnapshot, ValueSnapshot } from "./kv-cells.js";
import { type ListShape, patternOf } from "./list-state.js";
import type { LiveEntry } from "./reconcile.js";
import type { ClientStoreView } from "./source.js";

/** Follows the store's changes of `pattern` while started; every snapshot is read from the store. */
abstract class ClientCell<S> extends Cell<S> {
  #unsubscribe: (() => void) | null = null;

  constructor(
    host: CellHost,
    id: string,
    protected readonly store: ClientStoreView,
    initial: S,
  ) {
    super(host, id, initial);
  }

  protected abstract pattern(): KvPattern;
  /** The snapshot of what the store shows now: the last one while nothing it shows changed. */
  protected abstract current(): S;

  override readonly getSnapshot = (): S => this.current();

  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.store.subscribe(this.pattern(), () => this.publish(this.current()));
    // What changed between the first render and this subscription.
    this.publish(this.current());
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  protected loaded(): boolean {
    return true;
  }
}

/** One key of a client store (`useValue`). */
export class ClientValueCell<T = unknown> extends ClientCell<ValueSnapshot<T>> {
  #from: LiveEntry<T>;
  #last: ValueSnapshot<T>;

  constructor(
    host: CellHost,
    id: string,
    store: ClientStoreView,
    readonly key: KvKey,
  ) {
    const entry = store.peek<T>(key);
    const snapshot = { ...entry, loading: false, error: null };
    super(host, id, store, snapshot);
    this.#from = entry;
    this.#last = snapshot;
  }

  protected pattern(): KvPattern {
    return this.key;
  }

  protected current(): ValueSnapshot<T> {
    const entry = this.store.peek<T>(this.key);
    if (entry !== this.#from) {
      this.#from = entry;
      this.#last = { ...entry, loading: false, error: null };
    }
    return this.#last;
  }
}

/** A range of a client store (`useList`): recomputed once per revision of the view. */
export class ClientListCell<T = unknown> extends ClientCell<ListSnapshot<T>> {
  #revision: number;
  #last: ListSnapshot<T>;

  constructor(
    host: CellHost,
    id: string,
    store: ClientStoreView,
    readonly selector: KvListSelector,
    readonly shape: ListShape,
  ) {
    const snapshot = { entries: store.peekList<T>(selector, shape), loading: false, error: null };
    super(host, id, store, snapshot);
    this.#revision = store.revision;
    this.#last = snapshot;
  }

  protected pattern(): KvPattern {
    return patternOf(this.selector);
  }

  protected current(): ListSnapshot<T> {
    if (this.store.revision === this.#revision) return this.#last;
    this.#revision = this.store.revision;
    const entries = this.store.peekList<T>(this.selector, this.shape);
    const last = this.#last.entries;
    const same = entries.length === last.length && entries.every((entry, i) => entry === last[i]);
    if (!same) this.#last = { entries, loading: false, error: null };
    return this.#last;
  }
}
