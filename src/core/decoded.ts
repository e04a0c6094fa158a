/**
 * Values already decoded by the core for an entry it read (a where filter checked on an index's
 * candidate), handed to the `Kv` that returns the entry so it is not decoded twice. Keyed by the
 * read's own `RawEntry` objects, which no one else holds.
 */
import type { RawEntry } from "../contract/index.js";

const decoded = new WeakMap<RawEntry, unknown>();

export function rememberDecoded(entry: RawEntry, value: unknown): void {
  decoded.set(entry, value);
}

/** The value decoded for `entry`, taken once (a second call decodes again). */
export function takeDecoded(entry: RawEntry): { value: unknown } | null {
  if (!decoded.has(entry)) return null;
  const value = decoded.get(entry);
  decoded.delete(entry);
  return { value };
}
