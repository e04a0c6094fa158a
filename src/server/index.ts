export {
  type Access,
  type AuthOptions,
  loadTokens,
  type NamespaceSource,
  type TokenGrant,
} from "../http/auth.js";
export { type AppOptions, type CellarApp, createApp } from "./app.js";
export { type RunningServer, type ServerOptions, startServer } from "./serve.js";
export type { ConflictPolicy, SyncMerge, SyncOptions, SyncRule } from "./sync/apply.js";
