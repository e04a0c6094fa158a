import { KvError } from "../../errors.js";

/** True for the range `[key, key + 0x00)`, which holds exactly `key`: drivers answer it with a point lookup. */
export function isPoint(start: Uint8Array, end: Uint8Array): boolean {
  const n = start.length;
  if (end.length !== n + 1 || end[n] !== 0) return false;
  for (let i = n - 1; i >= 0; i--) if (start[i] !== end[i]) return false;
  return true;
}

/**
 * The least key above every key that starts with `prefix`: `prefix` with its last byte below
 * 0xff incremented and the rest cut off. Throws `INVALID_ARGUMENT` for a prefix without such a
 * byte (no namespace prefix is one: it ends with its name's 0x00 terminator).
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      const end = prefix.slice(0, i + 1);
      end[i] = prefix[i]! + 1;
      return end;
    }
  }
  throw new KvError("INVALID_ARGUMENT", "a prefix to purge needs a byte below 0xff");
}
