export * from "./api.js";
export {
  type BackupCallOptions,
  type BackupInfo,
  type BackupOptions,
  backup,
  type RestoreOptions,
  restore,
} from "./backup.js";
export * from "./mirror/index.js";
export {
  ClientAtomic,
  ClientKv,
  type ClientWrite,
  type ClientWriteOutcome,
} from "./offline/client-kv.js";
export { createClientKv } from "./offline/node.js";
export { memoryStorage } from "./offline/storage/memory.js";
export { sqliteStorage } from "./offline/storage/sqlite.js";
export type * from "./offline/types.js";
export { type OpenKvOptions, openKv } from "./open.js";
export * from "./typed/index.js";
