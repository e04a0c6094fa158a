/**
 * Scopes: which stored keys a caller may touch. Every stored key is its namespace's name (a
 * terminated string part) followed by the user's key, so a scope is a set of namespaces. The
 * commit pipeline and the read path check every key, range and queue against the caller's scope
 * before anything reaches the driver: a `Keyspace` (one namespace: an embedded view, a KV Connect
 * database) or a {@link NamespaceScope} (the namespaces a token may use).
 */
import { compareBytes, decodeKey } from "../codec/key.js";
import { KvError } from "../errors.js";

export interface Scope {
  /**
   * The length of `key`'s namespace prefix; throws `FORBIDDEN` when the key lies in a namespace
   * this scope may not use, `INVALID_KEY` when it does not start with a namespace at all.
   */
  prefixLength(key: Uint8Array): number;
  /** Throws `FORBIDDEN` unless `[start, end)` lies inside one namespace this scope may use. */
  assertRange(start: Uint8Array, end: Uint8Array): void;
}

/** A terminated string part: tag 0x02, the UTF-8 bytes with 0x00 escaped as 0x00 0xff, then 0x00. */
const STRING_TAG = 0x02;

/** The namespace a stored key belongs to, and where the user's key starts. */
export function namespaceOf(key: Uint8Array): { name: string; prefixLength: number } {
  const found = findNamespace(key);
  if (!found) throw notStored();
  return found;
}

/** {@link namespaceOf}, or null for bytes that do not start with a namespace. */
function findNamespace(key: Uint8Array): { name: string; prefixLength: number } | null {
  if (key[0] !== STRING_TAG) return null;
  let i = 1;
  while (i < key.length && !(key[i] === 0 && key[i + 1] !== 0xff)) i += key[i] === 0 ? 2 : 1;
  if (i >= key.length) return null;
  const name = decodeKey(key.subarray(0, i + 1))[0] as string;
  return { name, prefixLength: i + 1 };
}

/**
 * The namespace whose callers may use `namespace`: itself, except for the locks Cellar keeps on
 * behalf of one namespace, `$locks:<namespace>`, which belong to `<namespace>` (a lock holder
 * fences its writes with them through any face). Every other reserved namespace — database-wide
 * ones (`$schemas`) and a namespace's indexes (`$index:<namespace>`, which only the core writes,
 * in the commits of the entries they index) — belongs to itself, so only a caller allowed every
 * namespace reaches it.
 *
 * @example
 * ownerOf("$locks:tenant-a"); // "tenant-a"
 * ownerOf("$index:tenant-a"); // "$index:tenant-a"
 */
export function ownerOf(namespace: string): string {
  const kind = /^\$locks:/.exec(namespace);
  return kind ? namespace.slice(kind[0].length) : namespace;
}

const notStored = () => new KvError("INVALID_KEY", "a stored key starts with its namespace");

const forbidden = (name: string) =>
  new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(name)}`);

/**
 * The namespaces `may` accepts, for protocols whose requests name stored keys of any namespace
 * (the driver protocol). A namespace's own reserved namespaces (see {@link ownerOf}) go with it:
 * a caller that may use `tenant-a` may take the locks of `tenant-a`, and no other's.
 *
 * @example
 * const scope = new NamespaceScope((name) => name === "tenant-a");
 */
export class NamespaceScope implements Scope {
  constructor(private readonly may: (namespace: string) => boolean) {}

  /** Whether `key` lies in a namespace this scope may use; for filtering, where nothing throws. */
  covers(key: Uint8Array): boolean {
    const found = findNamespace(key);
    return found !== null && this.may(ownerOf(found.name));
  }

  prefixLength(key: Uint8Array): number {
    const { name, prefixLength } = namespaceOf(key);
    if (!this.may(ownerOf(name))) throw forbidden(name);
    return prefixLength;
  }

  assertRange(start: Uint8Array, end: Uint8Array): void {
    const prefixLength = this.prefixLength(start);
    const ceiling = new Uint8Array(prefixLength + 1);
    ceiling.set(start.subarray(0, prefixLength));
    ceiling[prefixLength] = 0xff;
    if (compareBytes(end, ceiling) > 0)
      throw new KvError("FORBIDDEN", "a range may not leave its namespace");
  }
}

/**
 * Every namespace, Cellar's own (`$…`) included, and ranges across namespaces: for what works on
 * the whole database (backup, restore, administration), never for a caller's request.
 */
export const WHOLE_DATABASE: Scope = {
  prefixLength: (key) => namespaceOf(key).prefixLength,
  assertRange: () => {},
};
