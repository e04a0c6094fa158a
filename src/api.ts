/**
 * The `Kv` API every entry point exposes (`cellar`, `cellar/client`): the database, its types and
 * errors. Each entry point adds its own `openKv`.
 */
export type { KvKey, KvKeyPart } from "./codec/key.js";
export { KvU64 } from "./codec/u64.js";
export type * from "./contract/index.js";
export type {
  AtomicOperation,
  KvAtomicCheck,
  KvAtomicKey,
  KvMutation,
  KvUuid,
} from "./core/atomic.js";
export type { HistoryOptions } from "./core/database.js";
export {
  ANY,
  type KvEvent,
  type KvEventListenerOptions,
  type KvEventStreamOptions,
  type KvPattern,
  type KvPatternPart,
  type KvProgress,
  type KvSubscribeOptions,
  REST,
} from "./core/events/index.js";
export type * from "./core/indexes/types.js";
export { Kv } from "./core/kv.js";
export { DEFAULT_LIMITS, type KvLimits } from "./core/limits.js";
export type { KvListIterator } from "./core/list.js";
export type { KvLock, KvLockFence, KvLockOptions } from "./core/locks/index.js";
export type {
  KvObserver,
  KvOperation,
  KvOperationKey,
  KvOperationName,
  KvOperationOutcome,
} from "./core/observe.js";
export type {
  KvDeadMessage,
  KvEnqueueOptions,
  KvEnqueueResult,
  KvQueue,
  KvQueueMessage,
  ListenOptions,
  QueueHandler,
} from "./core/queue.js";
export type {
  KvTransaction,
  KvTransactionEntry,
  KvTransactionOptions,
  KvTransactionResult,
} from "./core/transaction.js";
export type * from "./core/types.js";
export type { ChangeBatch } from "./core/watch.js";
export { KvError, type KvErrorCode } from "./errors.js";
