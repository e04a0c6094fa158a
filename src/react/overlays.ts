/**
 * Optimistic writes (`useMutation`'s `optimistic`): what a key shows while a write is on its
 * way. An overlay shows in a cell until the cell knows the key as of the write's commit
 * versionstamp — the server's entry for that write, or a later one, has arrived — or until the
 * write fails. Several overlays of one key show the latest made.
 */
import { encodeKey, type KvKey, keyId } from "../codec/key.js";
import type { KeyRef } from "../typed/compose.js";
import type { LiveEntry } from "./reconcile.js";

/** A write to show at once: a key's new value, its deletion, or a typed value's new value. */
export type OptimisticWrite =
  | { readonly key: KvKey; readonly value: unknown }
  | { readonly key: KvKey; readonly delete: true }
  | { readonly ref: KeyRef<unknown>; readonly value: unknown };

export class Overlay {
  /** The commit's versionstamp, once the write resolved; until then the overlay shows. */
  commit: string | undefined = undefined;
  readonly key: KvKey;
  readonly id: string;
  /** A typed value's overlay shows in `useTyped`/`useStoreEntry` only, as given (not decoded). */
  readonly typed: boolean;
  readonly value: unknown;
  readonly deleted: boolean;
  #entry: { base: string | null; entry: LiveEntry } | null = null;

  constructor(write: OptimisticWrite) {
    this.key = "ref" in write ? write.ref.key : write.key;
    this.id = keyId(encodeKey(this.key));
    this.typed = "ref" in write;
    this.deleted = "delete" in write && write.delete === true;
    this.value = "value" in write ? write.value : null;
  }

  /** Whether it still shows where the key is known as of `asOf`. */
  showsAt(asOf: string): boolean {
    return this.commit === undefined || asOf < this.commit;
  }

  /** The entry it shows over a stored one of versionstamp `base`: the same object while `base` is. */
  entryOver<T>(base: string | null): LiveEntry<T> {
    if (this.#entry?.base !== base) {
      const entry: LiveEntry = this.deleted
        ? { key: this.key, exists: false, value: null, versionstamp: base, pending: true }
        : { key: this.key, exists: true, value: this.value, versionstamp: base, pending: true };
      this.#entry = { base, entry };
    }
    return this.#entry!.entry as LiveEntry<T>;
  }
}

/** The overlay a cell shows for key `id` known as of `asOf`: the latest that still shows. */
export function shownOverlay(
  overlays: readonly Overlay[],
  id: string,
  asOf: string,
  typed: boolean,
): Overlay | undefined {
  for (let i = overlays.length - 1; i >= 0; i--) {
    const overlay = overlays[i]!;
    if (overlay.id === id && overlay.typed === typed && overlay.showsAt(asOf)) return overlay;
  }
  return undefined;
}
