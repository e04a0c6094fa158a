/**
 * A cell: one thing components read (a key, a range, a typed value), shared by every component
 * that reads it, in the shape `useSyncExternalStore` takes. `subscribe`, `getSnapshot` and
 * `getServerSnapshot` are bound once, so React never resubscribes on a re-render, and the
 * snapshot is the same object until what it shows changes, so a change elsewhere renders
 * nothing. A cell starts reading when its first component subscribes (or Suspense asks it to
 * `load`) and stops a while after its last one leaves (see `Registry`).
 */

/** What a cell's owner does for it: keeps it while watched, forgets it a while after. */
export interface CellHost {
  retain(cell: Cell<unknown>): void;
  release(cell: Cell<unknown>): void;
}

/**
 * The promise `load` returns once loaded: one object, marked fulfilled as React marks the
 * promises it has seen, so `use()` returns at once instead of suspending on a new promise.
 */
const LOADED: Promise<void> = Object.assign(Promise.resolve(), {
  status: "fulfilled",
  value: undefined,
});

export abstract class Cell<S> {
  readonly #listeners = new Set<() => void>();
  #snapshot: S;
  readonly #server: S;
  #loading: { promise: Promise<void>; resolve(): void; reject(error: unknown): void } | null = null;

  constructor(
    protected readonly host: CellHost,
    /** The cell's name in its registry. */
    readonly id: string,
    initial: S,
  ) {
    this.#snapshot = initial;
    this.#server = initial;
  }

  readonly subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    if (this.#listeners.size === 1) {
      this.host.retain(this);
      this.start();
    }
    return () => {
      if (this.#listeners.delete(listener) && this.#listeners.size === 0) this.host.release(this);
    };
  };

  readonly getSnapshot = (): S => this.#snapshot;

  /** What server rendering and hydration show: the snapshot the cell was made with. */
  readonly getServerSnapshot = (): S => this.#server;

  /** Whether a component subscribes to the cell. */
  get watched(): boolean {
    return this.#listeners.size > 0;
  }

  /**
   * Resolves once the cell shows something read (rejects if reading failed): the promise
   * Suspense waits on, the same object until it settles.
   */
  load(): Promise<void> {
    if (this.loaded()) return LOADED;
    if (!this.#loading) {
      let resolve = () => {};
      let reject: (error: unknown) => void = () => {};
      const promise = new Promise<void>((yes, no) => {
        resolve = yes;
        reject = no;
      });
      this.#loading = { promise, resolve, reject };
      this.host.release(this);
      this.start();
    }
    return this.#loading.promise;
  }

  /** Starts reading and following changes; does nothing when started. */
  abstract start(): void;
  /** Stops following changes. */
  abstract stop(): void;
  /** Whether the cell shows something read. */
  protected abstract loaded(): boolean;

  /** Shows `next` (when it is a new snapshot) and settles a pending `load`. */
  protected publish(next: S): void {
    if (this.#loading && this.loaded()) {
      this.#loading.resolve();
      this.#loading = null;
    }
    if (Object.is(next, this.#snapshot)) return;
    this.#snapshot = next;
    for (const listener of [...this.#listeners]) listener();
  }

  /** Fails a pending `load` (Suspense shows the error to the nearest error boundary). */
  protected failLoad(error: unknown): void {
    this.#loading?.reject(error);
    this.#loading = null;
  }
}
