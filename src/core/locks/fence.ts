/**
 * Fencing: `atomic().checkLock(lock)` makes a commit depend on the lock still being held with
 * the lock's token. The check the storage evaluates is a versionstamp check on the lock's entry,
 * inside the commit's own transaction: the entry must be the one carrying that token, neither
 * expired, deleted nor replaced by a later acquisition. So every fenced commit of a holder is
 * ordered after its acquisition and before the next acquisition of that lock, in the database's
 * commit order, whatever the clocks of the processes involved say.
 *
 * The entry's versionstamp changes at every renewal while its token stays. A fenced commit that
 * races its own lock's renewal, and fails only because the renewal landed first, is committed
 * again against the renewed entry: its checks are evaluated again, all or nothing, so trying
 * again writes nothing twice. A lock given as `{ name, token }` (a token carried to another
 * process) is read first, to find the versionstamp of the entry that carries the token.
 */
import { startsWith } from "../../codec/key.js";
import type { Check, CommitResult, RawEntry } from "../../contract/index.js";
import { describe, fail, KvError } from "../../errors.js";
import type { WriteRequest } from "../commit.js";
import type { Database } from "../database.js";
import type { Keyspace } from "../keyspace.js";
import type { Scope } from "../scope.js";
import { heldLock, type KvLock } from "./lease.js";
import { assertLockName, lockKeyspace, tokenOf } from "./record.js";

/** Commits of one fenced operation when renewals keep landing first. */
const FENCED_ATTEMPTS = 5;
const TOKEN = /^[0-9a-f]{20}$/;

/**
 * A lock as a fenced write names it: its name and token, in the namespace of the operation that
 * checks it. A `KvLock` is one; so is a token passed to another process.
 */
export interface KvLockFence {
  readonly name: string;
  readonly token: string;
}

/** One lock a commit checks: its entry's stored key and the token it must carry. */
export interface Fence {
  readonly keyspace: Keyspace;
  readonly key: Uint8Array;
  readonly name: string;
  readonly token: string;
  /** The versionstamp the holder last wrote, for a lock of this process: no read needed. */
  readonly known?: () => string;
}

/**
 * The fence of `lock` for an operation of `db` in `keyspace`: a `KvLock` from `db` (whichever
 * namespace it was taken in), or `{ name, token }` of a lock of `keyspace`'s namespace.
 */
export function fenceOf(db: Database, keyspace: Keyspace, lock: KvLock | KvLockFence): Fence {
  const handle = heldLock(lock);
  if (handle) {
    if (handle.db !== db)
      fail(
        "INVALID_ARGUMENT",
        `checkLock: lock ${JSON.stringify(handle.name)} is another database's`,
      );
    return {
      keyspace: handle.keyspace,
      key: handle.keyspace.encode([handle.name]),
      name: handle.name,
      token: handle.token,
      known: handle.versionstamp,
    };
  }
  if (typeof lock !== "object" || lock === null)
    fail("INVALID_ARGUMENT", `checkLock takes a lock or { name, token }, got ${describe(lock)}`);
  const { name, token } = lock;
  assertLockName(name);
  if (typeof token !== "string" || !TOKEN.test(token))
    fail(
      "INVALID_ARGUMENT",
      `token: a lock's token is a versionstamp (20 lowercase hex characters), got ${describe(token)}`,
    );
  const locks = lockKeyspace(db, keyspace.namespace);
  return { keyspace: locks, key: locks.encode([name]), name, token };
}

/** `scope`, widened to the keyspaces of the locks a commit checks. */
export function fencedScope(scope: Keyspace, fences: readonly Fence[]): Scope {
  const locks = fences.map((fence) => fence.keyspace);
  const owner = (key: Uint8Array) => locks.find((keyspace) => startsWith(key, keyspace.prefix));
  return {
    prefixLength: (key) => (owner(key) ?? scope).prefixLength(key),
    assertRange: (start, end) => (owner(start) ?? scope).assertRange(start, end),
  };
}

/**
 * Commits `build(now)` (an atomic operation's write, for the instant it is sent) with a check
 * of every fence. Resolves `null`, as a failed check does, when a lock is not held with its
 * token at the commit.
 */
export async function commitFenced(
  db: Database,
  scope: Keyspace,
  fences: readonly Fence[],
  build: (now: number) => WriteRequest,
): Promise<CommitResult | null> {
  const widened = fencedScope(scope, fences);
  const versionstamps = fences.map((fence) => fence.known?.());
  const unknown = fences.filter((_, i) => versionstamps[i] === undefined);
  if (unknown.length > 0) {
    const entries = await readFences(db, widened, unknown);
    for (const [j, fence] of unknown.entries()) {
      const entry = entries[j];
      if (!entry || tokenOf(entry) !== fence.token) return null;
      versionstamps[fences.indexOf(fence)] = entry.versionstamp;
    }
  }
  for (let attempt = 1; ; attempt++) {
    const now = db.now();
    const write = build(now);
    const checks = fences.map(
      (fence, i): Check => ({
        key: fence.key,
        versionstamp: versionstamps[i]!,
      }),
    );
    const result = await db.commit(
      { ...write, checks: [...write.checks, ...checks] },
      widened,
      now,
    );
    if (result || attempt === FENCED_ATTEMPTS) return result;
    // Did a lock's entry move on while keeping its token (its holder renewed it)? Then the
    // commit may have failed for that alone: try again against the renewed entry.
    const entries = await readFences(db, widened, fences);
    let renewed = false;
    for (const [i, fence] of fences.entries()) {
      const entry = entries[i];
      if (!entry || tokenOf(entry) !== fence.token) return null;
      if (entry.versionstamp !== versionstamps[i]) {
        versionstamps[i] = entry.versionstamp;
        renewed = true;
      }
    }
    if (!renewed) return null;
  }
}

/**
 * `write` with a check of every fence, read afresh, and the scope that lets it reach the locks;
 * for transactions, which retry on their own when a renewal moves a lock's entry. Throws
 * `LOCK_LOST` when a lock is not held with its token.
 */
export async function fenceWrite(
  db: Database,
  scope: Keyspace,
  fences: readonly Fence[],
  write: WriteRequest,
): Promise<{ write: WriteRequest; scope: Scope }> {
  const widened = fencedScope(scope, fences);
  const entries = await readFences(db, widened, fences);
  const checks = fences.map((fence, i): Check => {
    const entry = entries[i];
    if (!entry || tokenOf(entry) !== fence.token)
      throw new KvError(
        "LOCK_LOST",
        `lock ${JSON.stringify(fence.name)} is not held with token ${fence.token}`,
      );
    return { key: fence.key, versionstamp: entry.versionstamp };
  });
  return { write: { ...write, checks: [...write.checks, ...checks] }, scope: widened };
}

async function readFences(
  db: Database,
  scope: Scope,
  fences: readonly Fence[],
): Promise<(RawEntry | undefined)[]> {
  const results = await db.read(
    fences.map((fence) => fence.keyspace.encodePoint([fence.name])),
    scope,
  );
  return results.map((entries) => entries[0]);
}
