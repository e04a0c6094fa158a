/**
 * `cellar/workspace`: collaborative workspaces on Y.js. `defineWorkspace` declares tables, KV
 * keys and actions with the column types; `createClient` opens one over a Cellar database;
 * `bindWorkspace` types any `Y.Doc`; `checkUpdate` keeps a document valid against updates from
 * others. README "Collaborative workspaces" describes them.
 */

export { KvError } from "./errors.js";
export { ValidationError, type ValidationIssue } from "./typed/schemas.js";
export {
  type ClientOptions,
  createClient,
  type WorkspaceClient,
  workspaceNamespace,
} from "./workspace/client.js";
export {
  type AnyColumn,
  boolean,
  type Column,
  type ColumnOptions,
  type DateWithTimeZone,
  date,
  dateWithTimeZone,
  type FieldColumn,
  type FieldInput,
  type FieldJson,
  type FieldValue,
  type IdColumn,
  id,
  integer,
  json,
  real,
  select,
  type TagsColumn,
  tags,
  text,
  type ValueColumn,
  WORKSPACE_ID_PATTERN,
  WORKSPACE_NAME_PATTERN,
  type WorkspaceInput,
  type WorkspaceJson,
  type WorkspaceValue,
  type YTextColumn,
  type YTextOptions,
  ytext,
} from "./workspace/columns.js";
export {
  type ActionContext,
  type ActionDefinition,
  type Actions,
  type AnyAction,
  type AnyWorkspace,
  defineMutation,
  defineQuery,
  defineWorkspace,
  type WorkspaceDefinition,
} from "./workspace/define.js";
export {
  type ActionCaller,
  type ActionCallers,
  type BindOptions,
  type BoundWorkspace,
  bindWorkspace,
  checkUpdate,
  GENESIS_ORIGIN,
  REPAIR_ORIGIN,
  type UpdateCheck,
} from "./workspace/doc.js";
export type { KvChange, KvHelper, KvHelpers, KvSchema } from "./workspace/kv.js";
export {
  openPersistedDoc,
  PERSIST,
  type PersistedDoc,
  type PersistOptions,
} from "./workspace/persist.js";
export { type ConnectDocOptions, connectDoc, type RemoteDoc } from "./workspace/remote.js";
export { mirrorToSqlite, type SqliteMirror } from "./workspace/sqlite-mirror.js";
export type {
  Row,
  RowChange,
  RowInput,
  RowJson,
  TableHelper,
  TableSchema,
  Tables,
  TablesSchema,
} from "./workspace/tables.js";
