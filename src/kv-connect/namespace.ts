/**
 * Each Cellar namespace is one KV Connect database. A Deno client sees the keys *inside* the
 * namespace: every key it sends is stored behind the namespace's encoded prefix, and every key
 * it reads back has that prefix stripped. Ranges are clamped to the namespace, so no key, range
 * or check of one KV Connect database can reach another namespace.
 */
import { createHash } from "node:crypto";
import { concatBytes, decodeKey } from "../codec/key.js";
import type { KeyRange } from "../contract/index.js";
import type { KvLimits } from "../core/limits.js";
import { Keyspace } from "../core/surface.js";
import { KvError } from "../errors.js";

/**
 * The database id a namespace is known by in the metadata exchange: a UUID (version 8, RFC 9562)
 * derived from the namespace name, so it is stable across restarts and distinct per namespace.
 */
export function databaseIdOf(namespace: string): string {
  const bytes = createHash("sha256")
    .update(`cellar kv-connect\0${namespace}`)
    .digest()
    .subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class ConnectSpace {
  readonly keyspace: Keyspace;
  readonly databaseId: string;

  constructor(
    readonly namespace: string,
    private readonly limits: KvLimits,
  ) {
    this.keyspace = new Keyspace(namespace, limits);
    this.databaseId = databaseIdOf(namespace);
  }

  get prefix(): Uint8Array {
    return this.keyspace.prefix;
  }

  /**
   * The stored form of a key a client sends: it must decode as a key. Its size, and whether it
   * may be empty, are the commit pipeline's to check, as for every face.
   */
  storedKey(key: Uint8Array): Uint8Array {
    decodeKey(key);
    return concatBytes(this.prefix, key);
  }

  /** A client's `[start, end)` as a stored range inside the namespace; `null` when it is empty. */
  range(start: Uint8Array, end: Uint8Array): KeyRange | null {
    for (const bound of [start, end]) {
      if (bound.length > this.limits.maxKeySize + 1) {
        throw new KvError(
          "KEY_TOO_LARGE",
          `a range bound is ${bound.length} bytes; the limit is ${this.limits.maxKeySize + 1}`,
        );
      }
    }
    const storedStart = concatBytes(this.prefix, start);
    const storedEnd = concatBytes(this.prefix, end);
    const clampedEnd =
      Buffer.compare(storedEnd, this.keyspace.end) > 0 ? this.keyspace.end : storedEnd;
    if (Buffer.compare(storedStart, clampedEnd) >= 0) return null;
    return { start: storedStart, end: clampedEnd };
  }

  /** A stored key as the client knows it. */
  clientKey(stored: Uint8Array): Uint8Array {
    return stored.subarray(this.prefix.length);
  }
}
