/**
 * The stored state of recently used keys, as of one commit version: what the PostgreSQL driver
 * last read or wrote for each, minus every key a commit has changed since, as reported by the
 * change feed. A group commit whose keys are all known here skips reading them under the commit
 * lock; it only checks, in the same round trip as its writes, that no commit happened since.
 *
 * Bounded in bytes; the least recently used keys go first.
 */
import { keyId } from "../../codec/key.js";
import { rawSize } from "../../codec/value.js";
import type { StoredEntry } from "../../contract/apply.js";
import { UNREAD } from "./rows.js";

/** Bytes counted for an entry besides its value: key, metadata and map overhead, roughly. */
const ENTRY_OVERHEAD = 200;

export class EntryCache {
  readonly #maxBytes: number;
  readonly #entries = new Map<
    string,
    { key: Uint8Array; entry: StoredEntry | null; bytes: number }
  >();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /**
   * The stored state of every key, or null when one is unknown, or a key of `valueKeys` is
   * known without its value. A lookup does not make a key recent: a commit on what it found
   * sets every key it read or wrote again (see `ChangeFeed.remember`), which does.
   */
  lookup(
    keys: readonly Uint8Array[],
    valueKeys: readonly Uint8Array[],
  ): Map<string, StoredEntry | null> | null {
    const out = new Map<string, StoredEntry | null>();
    for (const key of keys) {
      const id = keyId(key);
      const known = this.#entries.get(id);
      if (!known) return null;
      out.set(id, known.entry);
    }
    for (const key of valueKeys) if (out.get(keyId(key))?.value === UNREAD) return null;
    return out;
  }

  set(key: Uint8Array, entry: StoredEntry | null): void {
    if (this.#maxBytes <= 0) return;
    const id = keyId(key);
    this.#drop(id);
    const bytes =
      ENTRY_OVERHEAD + key.length + (entry && entry.value !== UNREAD ? rawSize(entry.value) : 0);
    this.#entries.set(id, { key, entry, bytes });
    this.#bytes += bytes;
    // Iterating starts at the oldest slot, and V8 skips every slot freed since the map last
    // compacted: only walk it when something must go.
    if (this.#bytes <= this.#maxBytes) return;
    for (const [oldest] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#drop(oldest);
    }
  }

  /** Forgets keys a commit changed. */
  forget(keys: readonly Uint8Array[]): void {
    for (const key of keys) this.#drop(keyId(key));
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #drop(id: string): void {
    const known = this.#entries.get(id);
    if (!known) return;
    this.#entries.delete(id);
    this.#bytes -= known.bytes;
  }
}
