/**
 * The cells of one source (a `Kv` or a client store), shared by the components that read it:
 * one cell per key, range or typed value, so a hundred components showing one key cost one
 * read and one subscription. A cell nobody subscribes to is stopped and forgotten `keepAlive`
 * ms later (a remount within that time, as React's Strict Mode does, finds it still running).
 * The registry also holds the optimistic writes in flight (`overlays.ts`).
 */
import { encodeKey, type KvKey, keyId } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import type { KvEntryMaybe, KvListSelector } from "../core/types.js";
import type { KeyRef } from "../typed/compose.js";
import type { Cell } from "./cell.js";
import { ClientListCell, ClientValueCell } from "./client-cells.js";
import { DecodedCell } from "./decoded-cell.js";
import {
  type KvCell,
  type KvCellHost,
  KvListCell,
  KvValueCell,
  type ListSnapshot,
  type ValueSnapshot,
} from "./kv-cells.js";
import { type ListShape, rangeOf } from "./list-state.js";
import type { Overlay } from "./overlays.js";
import { isClientStore, type KvSource } from "./source.js";

export interface RegistryOptions {
  /** Milliseconds a cell nobody reads keeps running before it stops (default 2000). */
  readonly keepAlive?: number;
  /** Entries known before anything is read (read on the server, for server rendering). */
  readonly initial?: readonly KvEntryMaybe[];
}

export class Registry implements KvCellHost {
  readonly #cells = new Map<string, Cell<unknown>>();
  readonly #timers = new Map<Cell<unknown>, ReturnType<typeof setTimeout>>();
  readonly #initial = new Map<string, KvEntryMaybe>();
  readonly #owners = new WeakMap<object, number>();
  #ownerCount = 0;
  readonly #keepAlive: number;
  #head: Promise<string> | null = null;
  #sweeping = false;
  readonly overlays: Overlay[] = [];

  constructor(
    readonly source: KvSource,
    options: RegistryOptions = {},
  ) {
    this.#keepAlive = options.keepAlive ?? 2000;
    for (const entry of options.initial ?? []) {
      this.#initial.set(keyId(encodeKey(entry.key)), entry);
    }
  }

  /** The source as a `Kv` (the cells over a `Kv` use it; a client store has its own cells). */
  get kv(): Kv {
    return this.source as Kv;
  }

  /** The cell of one key. */
  value<T>(key: KvKey): Cell<ValueSnapshot<T>> {
    const id = keyId(encodeKey(key));
    return this.#cell(`v${id}`, (name) =>
      isClientStore(this.source)
        ? new ClientValueCell<T>(this, name, this.source, key)
        : new KvValueCell<T>(this, name, key, id, this.#initial.get(id) as KvEntryMaybe<T>),
    );
  }

  /** The cell of a range, listed with `shape`. */
  list<T>(selector: KvListSelector, shape: ListShape): Cell<ListSnapshot<T>> {
    const range = rangeOf(selector);
    const name = `l${range.start}\u0001${range.end}\u0001${shape.limit ?? ""}\u0001${shape.reverse === true}`;
    return this.#cell(name, (id) =>
      isClientStore(this.source)
        ? new ClientListCell<T>(this, id, this.source, selector, shape)
        : new KvListCell<T>(this, id, selector, shape),
    );
  }

  /** The typed cell of `ref`, one per `owner` (a typed value, or a store) and key. */
  decoded<T>(owner: object, ref: KeyRef<T>): DecodedCell<T> {
    let number = this.#owners.get(owner);
    if (number === undefined) {
      number = ++this.#ownerCount;
      this.#owners.set(owner, number);
    }
    const inner = this.value(ref.key) as KvValueCell<unknown>;
    return this.#cell(
      `d${number}\u0001${inner.keyId}`,
      (id) => new DecodedCell<T>(this, id, inner, ref),
    );
  }

  // biome-ignore lint/suspicious/noExplicitAny: a cell of any snapshot
  #cell<C extends Cell<any>>(name: string, make: (name: string) => C): C {
    let cell = this.#cells.get(name) as C | undefined;
    if (!cell) {
      cell = make(name);
      this.#cells.set(name, cell as Cell<unknown>);
      // A cell made by a render that never commits is forgotten like one nobody reads.
      this.release(cell as Cell<unknown>);
    }
    return cell;
  }

  retain(cell: Cell<unknown>): void {
    const timer = this.#timers.get(cell);
    if (timer) clearTimeout(timer);
    this.#timers.delete(cell);
    // A cell forgotten between a render and its subscription takes its place again.
    if (!this.#cells.has(cell.id)) this.#cells.set(cell.id, cell);
  }

  release(cell: Cell<unknown>): void {
    if (this.#timers.has(cell)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(cell);
      if (cell.watched) return;
      cell.stop();
      if (this.#cells.get(cell.id) === cell) this.#cells.delete(cell.id);
    }, this.#keepAlive);
    (timer as { unref?: () => void }).unref?.();
    this.#timers.set(cell, timer);
  }

  /**
   * The database's latest versionstamp. The read starts in a microtask, so the cells that ask
   * in one tick share it, each having subscribed before it asked.
   */
  head(): Promise<string> {
    this.#head ??= new Promise<string>((resolve, reject) => {
      queueMicrotask(() => {
        this.#head = null;
        this.kv.currentVersionstamp().then(resolve, reject);
      });
    });
    return this.#head;
  }

  /** Shows `overlays` in the cells of their keys. */
  show(overlays: readonly Overlay[]): void {
    this.overlays.push(...overlays);
    this.#touch(overlays);
  }

  /** Takes `overlays` away (their write failed). */
  drop(overlays: readonly Overlay[]): void {
    for (const overlay of overlays) {
      const at = this.overlays.indexOf(overlay);
      if (at >= 0) this.overlays.splice(at, 1);
    }
    this.#touch(overlays);
  }

  /**
   * `overlays`' write committed at `versionstamp`; without one (the write's result did not
   * say), at the head read after it, and their cells read again to reach it.
   */
  async committed(overlays: readonly Overlay[], versionstamp?: string): Promise<void> {
    const commit = versionstamp ?? (await this.head());
    for (const overlay of overlays) overlay.commit = commit;
    if (versionstamp === undefined) {
      const ids = new Set(overlays.map((overlay) => overlay.id));
      await Promise.all(
        this.#kvCells()
          .filter((cell) => [...ids].some((id) => cell.covers(id)))
          .map((cell) => cell.reread()),
      );
    }
    this.#touch(overlays);
  }

  /** Forgets the overlays every running cell of their key has caught up with. */
  settled(): void {
    if (this.#sweeping || this.overlays.length === 0) return;
    this.#sweeping = true;
    try {
      const done = this.overlays.filter(
        (overlay) =>
          overlay.commit !== undefined &&
          this.#kvCells().every(
            (cell) =>
              !cell.watched || !cell.covers(overlay.id) || !overlay.showsAt(cell.asOf(overlay.id)),
          ),
      );
      if (done.length > 0) this.drop(done);
    } finally {
      this.#sweeping = false;
    }
  }

  #kvCells(): KvCell<unknown>[] {
    return [...this.#cells.values()].filter((cell): cell is KvCell<unknown> => "covers" in cell);
  }

  /** Renders again the cells the overlays' keys are in. */
  #touch(overlays: readonly Overlay[]): void {
    if (isClientStore(this.source)) return;
    const ids = new Set(overlays.map((overlay) => overlay.id));
    for (const cell of this.#cells.values()) {
      const covered =
        cell instanceof DecodedCell
          ? ids.has(cell.inner.keyId)
          : "covers" in cell && [...ids].some((id) => (cell as KvCell<unknown>).covers(id));
      if (covered) (cell as KvCell<unknown> | DecodedCell<unknown>).render();
    }
  }
}
