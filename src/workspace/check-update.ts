/**
 * `checkUpdate`: whether a Yjs update keeps a workspace document valid, and when it does not,
 * the repair that undoes the damage. A server cannot refuse an update outright (the sender's
 * later updates build on it, and Yjs would hold them as pending forever), so it applies the
 * update together with its repair (`Y.mergeUpdates([update, repair])`) and sends both on:
 * every replica converges on a document where the bad values never show.
 */
import * as Y from "yjs";
import { bareMessage, KvError } from "../errors.js";
import type { ValidationIssue } from "../typed/schemas.js";
import { badTags, checkStored, copyStored, describeStored, fallbackJson } from "./cells.js";
import { provablyValid } from "./check-fast.js";
import { storageOf, type ValueColumn } from "./columns.js";
import type { AnyWorkspace } from "./define.js";
import { idFieldOf, isRequiredValue, type TableSchema } from "./tables.js";

/** The outcome of {@link checkUpdate}. */
export type UpdateCheck =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** What the update broke; paths start with `"kv"` or `"tables"`. */
      readonly issues: readonly ValidationIssue[];
      /** A Yjs update that, applied after the checked one, restores valid values. */
      readonly repair: Uint8Array;
    };

/** The origin of the transaction that makes a repair. */
export const REPAIR_ORIGIN = Symbol("cellar.workspace.repair");

interface Touched {
  readonly kv: Set<string>;
  /** Tables whose map was set or replaced at the root: every row is checked. */
  readonly tables: Set<string>;
  readonly rows: Map<string, Set<string>>;
}

/**
 * Applies `update` to a copy of `doc`, checks every KV key and row it touched against
 * `definition`, and returns the issues with a repair: a bad KV value goes back to its previous
 * value (or is deleted, so reads give the default); bad items of a tags array are deleted; a row
 * that existed has each bad field put back, and a new row that does not validate (a wrong id,
 * a missing required field…) is removed. Keys and tables the definition does not know are
 * removed too. `doc` itself is not changed. Throws `INVALID_VALUE` when `update` is not a Yjs
 * update.
 *
 * @example
 * const check = checkUpdate(app, doc, update);
 * Y.applyUpdate(doc, check.ok ? update : Y.mergeUpdates([update, check.repair]));
 */
export function checkUpdate(definition: AnyWorkspace, doc: Y.Doc, update: Uint8Array): UpdateCheck {
  if (provablyValid(definition, doc, update)) return { ok: true };
  return fullCheck(definition, doc, update);
}

/** The full check: apply to a copy of the document, look at everything the update touched. */
export function fullCheck(definition: AnyWorkspace, doc: Y.Doc, update: Uint8Array): UpdateCheck {
  const copy = new Y.Doc();
  Y.applyUpdate(copy, Y.encodeStateAsUpdate(doc));
  const touched = recordTouched(copy, () => {
    try {
      Y.applyUpdate(copy, update);
    } catch (error) {
      throw new KvError(
        "INVALID_VALUE",
        `not a Yjs update: ${error instanceof Error ? bareMessage(error) : String(error)}`,
        { cause: error },
      );
    }
  });
  const repairs: (() => void)[] = [];
  const issues: ValidationIssue[] = [];
  const before = { kv: doc.getMap<unknown>("kv"), tables: doc.getMap<unknown>("tables") };
  const after = { kv: copy.getMap<unknown>("kv"), tables: copy.getMap<unknown>("tables") };
  for (const key of touched.kv) {
    checkKvKey(definition, key, before.kv, after.kv, issues, repairs);
  }
  for (const name of touched.tables) {
    checkTable(definition, name, before.tables, after.tables, issues, repairs);
  }
  for (const [name, ids] of touched.rows) {
    const schema = tableOf(definition, name);
    const rows = after.tables.get(name);
    if (touched.tables.has(name) || schema === undefined || !(rows instanceof Y.Map)) continue;
    const previous = before.tables.get(name);
    for (const id of ids) {
      checkRow(
        name,
        schema,
        id,
        previous instanceof Y.Map ? previous : undefined,
        rows,
        issues,
        repairs,
      );
    }
  }
  if (issues.length === 0) return { ok: true };
  const parts: Uint8Array[] = [];
  const capture = (part: Uint8Array) => parts.push(part);
  copy.on("update", capture);
  copy.transact(() => {
    for (const repair of repairs) repair();
  }, REPAIR_ORIGIN);
  copy.off("update", capture);
  copy.destroy();
  return { ok: false, issues, repair: parts.length === 1 ? parts[0]! : Y.mergeUpdates(parts) };
}

/** Runs `apply` and returns what it touched in the root maps `"kv"` and `"tables"`. */
function recordTouched(copy: Y.Doc, apply: () => void): Touched {
  const touched: Touched = { kv: new Set(), tables: new Set(), rows: new Map() };
  const kv = copy.getMap<unknown>("kv");
  const tables = copy.getMap<unknown>("tables");
  const onKv = (events: Y.YEvent<Y.AbstractType<unknown>>[]) => {
    for (const event of events) {
      if (event.target === kv) for (const key of keysOf(event)) touched.kv.add(key);
      else if (typeof event.path[0] === "string") touched.kv.add(event.path[0]);
    }
  };
  const onTables = (events: Y.YEvent<Y.AbstractType<unknown>>[]) => {
    for (const event of events) {
      const [name, id] = event.path;
      if (event.target === tables) {
        for (const key of keysOf(event)) touched.tables.add(key);
      } else if (typeof name === "string") {
        const ids = touched.rows.get(name) ?? new Set<string>();
        touched.rows.set(name, ids);
        if (typeof id === "string") ids.add(id);
        else for (const key of keysOf(event)) ids.add(key);
      }
    }
  };
  kv.observeDeep(onKv);
  tables.observeDeep(onTables);
  try {
    apply();
  } finally {
    kv.unobserveDeep(onKv);
    tables.unobserveDeep(onTables);
  }
  return touched;
}

function keysOf(event: Y.YEvent<Y.AbstractType<unknown>>): Iterable<string> {
  return event instanceof Y.YMapEvent ? event.keysChanged : [];
}

function tableOf(definition: AnyWorkspace, name: string): TableSchema | undefined {
  return Object.hasOwn(definition.tables, name)
    ? (definition.tables[name] as TableSchema)
    : undefined;
}

function checkKvKey(
  definition: AnyWorkspace,
  key: string,
  before: Y.Map<unknown>,
  after: Y.Map<unknown>,
  issues: ValidationIssue[],
  repairs: (() => void)[],
): void {
  const raw = after.get(key);
  if (raw === undefined) return;
  if (!Object.hasOwn(definition.kv, key)) {
    issues.push({ path: ["kv", key], message: "not a KV key of this workspace" });
    repairs.push(() => after.delete(key));
    return;
  }
  const column = definition.kv[key] as ValueColumn;
  const found = checkStored(column, raw);
  if (found.length === 0) return;
  for (const issue of found) issues.push({ ...issue, path: ["kv", key, ...issue.path] });
  if (raw instanceof Y.Array && storageOf(column) === "tags") {
    repairs.push(() => deleteItems(raw, badTags(column, raw)));
    return;
  }
  const previous = before.get(key);
  repairs.push(() => {
    if (previous !== undefined && checkStored(column, previous).length === 0) {
      after.set(key, copyStored(previous));
    } else {
      after.delete(key);
    }
  });
}

function checkTable(
  definition: AnyWorkspace,
  name: string,
  before: Y.Map<unknown>,
  after: Y.Map<unknown>,
  issues: ValidationIssue[],
  repairs: (() => void)[],
): void {
  const rows = after.get(name);
  if (rows === undefined) return;
  const schema = tableOf(definition, name);
  if (schema === undefined) {
    issues.push({ path: ["tables", name], message: "not a table of this workspace" });
    repairs.push(() => after.delete(name));
    return;
  }
  if (!(rows instanceof Y.Map)) {
    issues.push({
      path: ["tables", name],
      message: `expected a Y.Map of rows, got ${describeStored(rows)}`,
    });
    const previous = before.get(name);
    repairs.push(() => {
      if (previous instanceof Y.Map) after.set(name, copyStored(previous));
      else after.delete(name);
    });
    return;
  }
  const previous = before.get(name);
  for (const id of rows.keys()) {
    checkRow(
      name,
      schema,
      id,
      previous instanceof Y.Map ? previous : undefined,
      rows,
      issues,
      repairs,
    );
  }
}

function checkRow(
  table: string,
  schema: TableSchema,
  id: string,
  before: Y.Map<unknown> | undefined,
  rows: Y.Map<unknown>,
  issues: ValidationIssue[],
  repairs: (() => void)[],
): void {
  const raw = rows.get(id);
  if (raw === undefined) return;
  const path = ["tables", table, id];
  const previous = before?.get(id);
  const restorable = previous instanceof Y.Map && rowIssues(schema, id, previous).length === 0;
  const restoreRow = () => {
    if (restorable) rows.set(id, copyStored(previous));
    else rows.delete(id);
  };
  if (!(raw instanceof Y.Map)) {
    issues.push({ path, message: `expected a Y.Map row, got ${describeStored(raw)}` });
    repairs.push(restoreRow);
    return;
  }
  const found = rowIssues(schema, id, raw);
  if (found.length === 0) return;
  for (const issue of found) issues.push({ ...issue, path: [...path, ...issue.path] });
  if (!restorable) {
    repairs.push(restoreRow);
    return;
  }
  const idField = idFieldOf(schema);
  const fields = new Set(found.map((issue) => issue.path[0] as string));
  repairs.push(() => {
    for (const field of fields) {
      if (field === idField) {
        raw.set(idField, id);
        continue;
      }
      const column = Object.hasOwn(schema, field) ? (schema[field] as ValueColumn) : undefined;
      if (column === undefined) {
        raw.delete(field);
        continue;
      }
      const value = raw.get(field);
      if (value instanceof Y.Array && storageOf(column) === "tags") {
        deleteItems(value, badTags(column, value));
        continue;
      }
      const old = previous.get(field);
      if (old !== undefined && checkStored(column, old).length === 0)
        raw.set(field, copyStored(old));
      else raw.set(field, fallbackCell(column));
    }
  });
}

/** What a row's field holds when nothing valid was there before: its default, as a new cell. */
function fallbackCell(column: ValueColumn): unknown {
  const fallback = fallbackJson(column);
  if (fallback === null) return null;
  if (column.kind === "ytext") return new Y.Text(fallback as string);
  if (column.kind === "tags") return Y.Array.from([...(fallback as string[])]);
  return fallback;
}

/** Why a stored row is not a row of `schema`: paths start with the field. */
function rowIssues(schema: TableSchema, id: string, row: Y.Map<unknown>): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const idField = idFieldOf(schema);
  const storedId = row.get(idField);
  if (storedId !== id) {
    issues.push({
      path: [idField],
      message: `expected the row's id ${JSON.stringify(id)}, got ${describeStored(storedId)}`,
    });
  }
  for (const field of row.keys()) {
    if (!Object.hasOwn(schema, field))
      issues.push({ path: [field], message: "not a field of this table" });
  }
  for (const [field, column] of Object.entries(schema)) {
    if (column.kind === "id") continue;
    const value = row.get(field);
    if (value === undefined && isRequiredValue(column)) {
      issues.push({ path: [field], message: "required" });
    }
    for (const issue of checkStored(column, value))
      issues.push({ ...issue, path: [field, ...issue.path] });
  }
  return issues;
}

function deleteItems(array: Y.Array<unknown>, indexes: readonly number[]): void {
  for (let i = indexes.length - 1; i >= 0; i--) array.delete(indexes[i]!, 1);
}
