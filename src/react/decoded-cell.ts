/**
 * A typed read of one key (`useTyped`, `useStoreEntry`): the key's cell, each entry it shows
 * decoded as the typed helper's own `get()` decodes it (defaults, validation, migrations).
 * Decoding may be asynchronous; a decode that finishes after a newer entry's started is dropped,
 * so the order of what is shown is the order of the entries.
 */
import type { KeyRef } from "../typed/compose.js";
import { Cell } from "./cell.js";
import type { KvCellHost, KvValueCell, ValueSnapshot } from "./kv-cells.js";
import { shownOverlay } from "./overlays.js";

/** What `useTyped` and `useStoreEntry` return. */
export type TypedSnapshot<T> =
  | {
      readonly loading: true;
      readonly value: undefined;
      readonly versionstamp: null;
      readonly pending: boolean;
      readonly error: Error | null;
    }
  | {
      readonly loading: false;
      /** The decoded value: the default (or `null`) when the key is absent or invalid. */
      readonly value: T;
      /** The versionstamp of the stored entry it was decoded from; `null` when absent. */
      readonly versionstamp: string | null;
      /** True while it shows an optimistic write. */
      readonly pending: boolean;
      readonly error: Error | null;
    };

const LOADING: TypedSnapshot<never> = {
  loading: true,
  value: undefined,
  versionstamp: null,
  pending: false,
  error: null,
};

export class DecodedCell<T> extends Cell<TypedSnapshot<T>> {
  #unsubscribe: (() => void) | null = null;
  /** The inner snapshot the last decode started from. */
  #from: ValueSnapshot<unknown> | null = null;
  #decodes = 0;
  #decoded = false;

  constructor(
    protected override readonly host: KvCellHost,
    id: string,
    readonly inner: KvValueCell<unknown>,
    readonly ref: KeyRef<T>,
  ) {
    super(host, id, LOADING as TypedSnapshot<T>);
  }

  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.inner.subscribe(() => this.render());
    this.render();
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  protected loaded(): boolean {
    return this.#decoded;
  }

  /** Shows the typed overlay of the key, or decodes the entry the key's cell shows. */
  render(): void {
    const typed = shownOverlay(this.host.overlays, this.inner.keyId, this.inner.asOf(), true);
    if (typed) {
      this.#from = null;
      this.#decoded = true;
      const current = this.getSnapshot();
      if (current.pending && current.value === typed.value) this.publish(current);
      else {
        this.publish({
          loading: false,
          value: typed.value as T,
          versionstamp: this.inner.getSnapshot().versionstamp,
          pending: true,
          error: null,
        });
      }
      return;
    }
    const from = this.inner.getSnapshot();
    if (from.error && this.#from?.error !== from.error) this.failLoad(from.error);
    if (from.loading || sameEntry(from, this.#from)) {
      this.#from = from;
      const current = this.getSnapshot();
      this.publish(current.error === from.error ? current : { ...current, error: from.error });
      return;
    }
    this.#from = from;
    const decode = ++this.#decodes;
    Promise.resolve(this.ref.decode(from)).then(
      (value) => {
        if (decode !== this.#decodes) return;
        this.#decoded = true;
        this.publish({
          loading: false,
          value,
          versionstamp: from.versionstamp,
          pending: from.pending,
          error: from.error,
        });
      },
      (error: unknown) => {
        if (decode !== this.#decodes) return;
        const failed = error instanceof Error ? error : new Error(String(error));
        this.failLoad(failed);
        this.publish({ ...this.getSnapshot(), error: failed });
      },
    );
  }
}

function sameEntry(a: ValueSnapshot<unknown>, b: ValueSnapshot<unknown> | null): boolean {
  return (
    b !== null &&
    !b.loading &&
    a.value === b.value &&
    a.versionstamp === b.versionstamp &&
    a.pending === b.pending
  );
}
