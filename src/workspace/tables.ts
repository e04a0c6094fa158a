/**
 * `$tables`: one typed helper per table of a workspace, over the document's root map `"tables"`
 * (table name → `Y.Map` of rows, row id → `Y.Map` of fields). Upserts write only the fields that
 * changed, so concurrent edits of different fields of one row merge.
 */
import * as Y from "yjs";
import { describe } from "../errors.js";
import { ValidationError, type ValidationIssue } from "../typed/schemas.js";
import { checkInput, decodeStored, fallbackJson, storedJson, writeStored } from "./cells.js";
import {
  type FieldColumn,
  type FieldInput,
  type FieldJson,
  type FieldValue,
  type IsRequired,
  storageOf,
  type ValueColumn,
} from "./columns.js";
import { assertCallback, notify } from "./kv.js";
import { ensureSlot } from "./slots.js";

/** A table: field names to columns, exactly one of them `id()`. */
export type TableSchema = { readonly [field: string]: FieldColumn };
/** A workspace's tables. */
export type TablesSchema = { readonly [table: string]: TableSchema };

/** A row as reads give it: live `Y.Text` / `Y.Array` for `ytext` and `tags` fields. */
export type Row<T extends TableSchema> = { [F in keyof T & string]: FieldValue<T[F]> };

type RequiredField<T extends TableSchema> = {
  [F in keyof T & string]: IsRequired<T[F]> extends true ? F : never;
}[keyof T & string];

/** What `upsert()` takes: the id and the fields without a default, the others optional. */
export type RowInput<T extends TableSchema> = {
  [F in RequiredField<T>]: FieldInput<T[F]>;
} & { [F in Exclude<keyof T & string, RequiredField<T>>]?: FieldInput<T[F]> };

/** A row's JSON form. */
export type RowJson<T extends TableSchema> = { [F in keyof T & string]: FieldJson<T[F]> };

/** What a table's `observe` reports: the rows one transaction changed. */
export interface RowChange {
  /** Rows added or changed (a field set, or an edit inside one of their Y types). */
  readonly upserted: string[];
  /** Rows deleted. */
  readonly deleted: string[];
  /** Whether the transaction was made on this document rather than applied from an update. */
  readonly local: boolean;
  readonly origin: unknown;
}

/** One table of a workspace. */
export interface TableHelper<T extends TableSchema = TableSchema> {
  readonly name: string;
  readonly schema: T;
  /** The name of the table's `id()` field. */
  readonly idField: string;
  /**
   * Validates `row` and writes it: a new row gets the defaults of the fields not given; an
   * existing one keeps them, and only fields whose value changed are written (text and tags as
   * diffs). A row that does not validate throws `ValidationError` (`INVALID_VALUE`) and changes
   * nothing.
   */
  upsert(row: RowInput<T>): void;
  /** `upsert()` from the JSON form (dates as `{ date, timeZone }`). */
  upsertJSON(json: unknown): void;
  /** The row, or `null` when there is none or a field without a default does not validate. */
  get(id: string): Row<T> | null;
  /** The row's JSON form, or `null`. */
  getJSON(id: string): RowJson<T> | null;
  /** Every row, by id. */
  getAll(): Row<T>[];
  /** Every row's JSON form, by id. */
  toJSON(): RowJson<T>[];
  /** Deletes the row; whether there was one. */
  delete(id: string): boolean;
  /** Calls `callback` after every transaction that changes rows of this table. Returns the function that stops it. */
  observe(callback: (change: RowChange) => void): () => void;
}

/** `$tables`: a helper per table. */
export type Tables<T extends TablesSchema> = {
  readonly [N in keyof T & string]: TableHelper<T[N]>;
};

/**
 * The `$tables` helpers of `schema` over `doc`; `origin` marks the transactions they make.
 *
 * @example
 * const tables = createTableHelpers(new Y.Doc(), { posts: { id: id(), title: text() } });
 * tables.posts.upsert({ id: "p1", title: "Hello" });
 */
export function createTableHelpers<T extends TablesSchema>(
  doc: Y.Doc,
  schema: T,
  origin: unknown = null,
): Tables<T> {
  return Object.freeze(
    Object.fromEntries(
      Object.entries(schema).map(([name, table]) => [
        name,
        new TableHelperImpl(doc, name, table, origin),
      ]),
    ),
  ) as unknown as Tables<T>;
}

/** The name of a table's `id()` field. */
export function idFieldOf(table: TableSchema): string {
  const found = Object.entries(table).find(([, column]) => column.kind === "id");
  return found ? found[0] : "id";
}

/** Plain fields without a default that are not nullable: a row lacking one is not a row. */
export function isRequiredValue(column: ValueColumn): boolean {
  return storageOf(column) === "value" && !column.nullable && !column.hasDefault;
}

class TableHelperImpl<T extends TableSchema> implements TableHelper<T> {
  readonly idField: string;
  readonly #fields: [string, ValueColumn][];
  readonly #root: Y.Map<unknown>;

  constructor(
    private readonly doc: Y.Doc,
    readonly name: string,
    readonly schema: T,
    private readonly origin: unknown,
  ) {
    this.idField = idFieldOf(schema);
    this.#fields = Object.entries(schema).filter(
      (entry): entry is [string, ValueColumn] => entry[1].kind !== "id",
    );
    this.#root = doc.getMap("tables");
  }

  upsert(row: RowInput<T>): void {
    const { id, values } = this.#check(row);
    this.doc.transact(() => {
      const rows = ensureSlot(this.doc, "tables", this.name, "table");
      const existing = rows.get(id);
      if (!(existing instanceof Y.Map)) {
        rows.set(id, this.#newRow(id, values));
        return;
      }
      if (existing.get(this.idField) !== id) existing.set(this.idField, id);
      for (const [field, column] of this.#fields) {
        if (!values.has(field)) continue;
        writeStored(existing, field, column, values.get(field), () =>
          existing.set(field, column.kind === "ytext" ? new Y.Text() : new Y.Array()),
        );
      }
    }, this.origin);
  }

  upsertJSON(json: unknown): void {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new ValidationError(this.#subject(), [
        { path: [], message: `expected an object, got ${describe(json)}` },
      ]);
    }
    const row: Record<string, unknown> = { ...json };
    for (const [field, column] of this.#fields) {
      if (row[field] !== undefined) row[field] = column.fromJSON(row[field]);
    }
    this.upsert(row as RowInput<T>);
  }

  get(id: string): Row<T> | null {
    const row = this.#rows()?.get(id);
    if (!(row instanceof Y.Map)) return null;
    const out: Record<string, unknown> = { [this.idField]: id };
    const missing: [string, ValueColumn][] = [];
    for (const [field, column] of this.#fields) {
      const decoded = decodeStored(column, row.get(field));
      if (decoded !== undefined) {
        out[field] = decoded.value;
      } else if (storageOf(column) === "value") {
        if (isRequiredValue(column)) return null;
        out[field] = column.defaultValue();
      } else if (fallbackJson(column) === null) {
        out[field] = null;
      } else {
        missing.push([field, column]);
      }
    }
    if (missing.length > 0) {
      // A row written under an older schema gains the text or tags of a newer field when read.
      this.doc.transact(() => {
        for (const [field, column] of missing) {
          out[field] = row.set(field, prelim(column, fallbackJson(column)));
        }
      }, this.origin);
    }
    return out as Row<T>;
  }

  getJSON(id: string): RowJson<T> | null {
    const row = this.#rows()?.get(id);
    if (!(row instanceof Y.Map)) return null;
    const out: Record<string, unknown> = { [this.idField]: id };
    for (const [field, column] of this.#fields) {
      const raw = row.get(field);
      if (isRequiredValue(column) && decodeStored(column, raw) === undefined) return null;
      out[field] = storedJson(column, raw);
    }
    return out as RowJson<T>;
  }

  getAll(): Row<T>[] {
    return this.#ids()
      .map((id) => this.get(id))
      .filter((row): row is Row<T> => row !== null);
  }

  toJSON(): RowJson<T>[] {
    return this.#ids()
      .map((id) => this.getJSON(id))
      .filter((row): row is RowJson<T> => row !== null);
  }

  delete(id: string): boolean {
    const rows = this.#rows();
    if (!rows?.has(id)) return false;
    this.doc.transact(() => rows.delete(id), this.origin);
    return true;
  }

  observe(callback: (change: RowChange) => void): () => void {
    assertCallback(callback);
    const handler = (events: Y.YEvent<Y.AbstractType<unknown>>[], transaction: Y.Transaction) => {
      const ids = new Set<string>();
      for (const event of events) {
        const [table, id] = event.path;
        if (event.target === this.#root) {
          if ((event as Y.YMapEvent<unknown>).keysChanged.has(this.name)) {
            for (const each of this.#ids()) ids.add(each);
          }
        } else if (table === this.name && typeof id === "string") {
          ids.add(id);
        } else if (table === this.name) {
          for (const key of (event as Y.YMapEvent<unknown>).keysChanged) ids.add(key);
        }
      }
      if (ids.size === 0) return;
      const rows = this.#rows();
      const sorted = [...ids].sort();
      notify(callback, {
        upserted: sorted.filter((each) => rows?.get(each) instanceof Y.Map),
        deleted: sorted.filter((each) => !(rows?.get(each) instanceof Y.Map)),
        local: transaction.local,
        origin: transaction.origin,
      });
    };
    this.#root.observeDeep(handler);
    return () => this.#root.unobserveDeep(handler);
  }

  #rows(): Y.Map<unknown> | undefined {
    const rows = this.#root.get(this.name);
    return rows instanceof Y.Map ? rows : undefined;
  }

  #ids(): string[] {
    const rows = this.#rows();
    if (!rows) return [];
    return [...rows.keys()].filter((id) => rows.get(id) instanceof Y.Map).sort();
  }

  #subject(): string {
    return `row of table ${JSON.stringify(this.name)}`;
  }

  /** Validates an upsert's row: its id, and what each given field stores. */
  #check(row: unknown): { id: string; values: Map<string, unknown> } {
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      throw new ValidationError(this.#subject(), [
        { path: [], message: `expected an object, got ${describe(row)}` },
      ]);
    }
    const given = row as Record<string, unknown>;
    const issues: ValidationIssue[] = [];
    for (const key of Object.keys(given)) {
      if (!Object.hasOwn(this.schema, key)) {
        issues.push({ path: [key], message: `not a field of table ${JSON.stringify(this.name)}` });
      }
    }
    const id = given[this.idField];
    if (typeof id !== "string" || id.length === 0) {
      issues.push({
        path: [this.idField],
        message: `expected the row's id, a non-empty string, got ${describe(id)}`,
      });
    }
    const values = new Map<string, unknown>();
    for (const [field, column] of this.#fields) {
      const value = given[field];
      if (value === undefined) {
        if (isRequiredValue(column)) issues.push({ path: [field], message: "required" });
        continue;
      }
      const checked = checkInput(column, value);
      if (checked.ok) values.set(field, checked.value);
      else
        for (const issue of checked.issues) issues.push({ ...issue, path: [field, ...issue.path] });
    }
    if (issues.length > 0) throw new ValidationError(this.#subject(), issues);
    return { id: id as string, values };
  }

  #newRow(id: string, values: Map<string, unknown>): Y.Map<unknown> {
    const entries: [string, unknown][] = [[this.idField, id]];
    for (const [field, column] of this.#fields) {
      const value = values.has(field) ? values.get(field) : fallbackJson(column);
      entries.push([field, prelim(column, value)]);
    }
    return new Y.Map(entries);
  }
}

/** What a new cell holds: the stored value, or a new Y type with that content. */
function prelim(column: ValueColumn, stored: unknown): unknown {
  if (stored === null) return null;
  if (column.kind === "ytext") return new Y.Text(stored as string);
  if (column.kind === "tags") return Y.Array.from([...(stored as string[])]);
  return stored;
}
