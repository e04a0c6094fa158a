/**
 * Locks and leases: named locks of a namespace held for a time and renewed while their holder
 * lives (`lease.ts`), and fencing tokens that commits check at the storage (`fence.ts`). The
 * public faces are `kv.lock()`, `kv.withLock()` and `checkLock()` on atomic operations and
 * transactions.
 */
export { commitFenced, type Fence, fenceOf, fenceWrite, type KvLockFence } from "./fence.js";
export { acquireLock, type KvLock, type KvLockOptions, runWithLock } from "./lease.js";
