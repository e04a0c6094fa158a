/**
 * The driver contract, by capability: {@link KvStorage} (every driver), {@link KvChangeFeed}
 * (every driver: watches and the change log are built on it) and {@link KvQueueStore}
 * (optional). The conformance suite (`cellar/testing`) runs per capability.
 */
import type { KvBackupStore } from "./backup.js";
import type { KvChangeFeed } from "./changes.js";
import type { KvQueueStore } from "./queues.js";
import type { KvSearchStore } from "./search.js";
import type { KvStorage } from "./storage.js";

export type * from "./backup.js";
export type * from "./changes.js";
export type * from "./filter.js";
export type * from "./indexes.js";
export type * from "./queues.js";
export type * from "./search.js";
export type * from "./storage.js";

/**
 * What `openKv` runs on: storage and a change feed, and queues, search and backups when the
 * driver has them.
 */
export type KvDriver = KvStorage &
  KvChangeFeed &
  Partial<KvQueueStore> &
  Partial<KvSearchStore> &
  Partial<KvBackupStore>;

const QUEUE_METHODS = [
  "dequeue",
  "settle",
  "queueStats",
  "listDead",
  "getDead",
  "requeueDead",
  "deleteDead",
] as const satisfies readonly (keyof KvQueueStore)[];

/** True when `driver` implements the whole queue contract. */
export function hasQueues(driver: KvDriver): driver is KvDriver & KvQueueStore {
  return QUEUE_METHODS.every((method) => typeof driver[method] === "function");
}

/** True when `driver` implements full-text search. */
export function hasSearch(driver: KvDriver): driver is KvDriver & KvSearchStore {
  return typeof driver.search === "function" && typeof driver.createSearchIndex === "function";
}
