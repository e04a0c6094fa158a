/**
 * Where a lock lives and what its entry holds. The lock `name` of namespace `ns` is the key
 * `[name]` of the reserved namespace `$locks:ns` (see `ownerOf` in `scope.ts`: a caller that may
 * use `ns` may use it, and no other), so locks never show in the namespace's own keys, and a
 * lock of one namespace never blocks another's.
 */
import { decodeValue } from "../../codec/value.js";
import type { RawEntry } from "../../contract/index.js";
import { describe, fail, KvError } from "../../errors.js";
import type { Database } from "../database.js";
import { Keyspace } from "../keyspace.js";

/**
 * What a lock's entry stores. The acquiring commit cannot write its own versionstamp, so its
 * entry has no `token` and its token is the entry's versionstamp; renewals write it out.
 */
export interface LockRecord {
  /** Identifies the handle that holds the lock, for whoever inspects the entry. */
  readonly holder: string;
  readonly token?: string;
}

/** The keyspace of namespace `namespace`'s locks. */
export function lockKeyspace(db: Database, namespace: string): Keyspace {
  return new Keyspace(`$locks:${namespace}`, db.limits);
}

/** Throws `INVALID_ARGUMENT` unless `name` can name a lock. */
export function assertLockName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0)
    fail("INVALID_ARGUMENT", `name: a lock's name is a non-empty string, got ${describe(name)}`);
}

/** The fencing token of the acquisition that wrote `entry`. */
export function tokenOf(entry: RawEntry): string {
  const record = decodeValue(entry.value) as Partial<LockRecord> | null;
  return typeof record?.token === "string" ? record.token : entry.versionstamp;
}

/** The live entry of a lock, or `null` when nobody holds it. */
export async function readLock(
  db: Database,
  keyspace: Keyspace,
  name: string,
): Promise<RawEntry | null> {
  const [[entry] = []] = await db.read([keyspace.encodePoint([name])], keyspace);
  return entry ?? null;
}

/** `LOCK_HELD`: another holder has lock `name` (after waiting `waited` ms for it). */
export function lockHeld(name: string, waited: number): KvError {
  return new KvError(
    "LOCK_HELD",
    `lock ${JSON.stringify(name)} is held by another holder${waited > 0 ? ` (waited ${waited} ms)` : ""}`,
  );
}
