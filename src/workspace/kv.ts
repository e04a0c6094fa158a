/**
 * `$kv`: one typed helper per KV key of a workspace, over the document's root map `"kv"`
 * (key → plain value, `Y.Text` or `Y.Array`). Reads are synchronous and never throw; a stored
 * value that does not validate reads as the default.
 */
import * as Y from "yjs";
import { describe, fail } from "../errors.js";
import { ValidationError } from "../typed/schemas.js";
import {
  checkInput,
  constantDefault,
  decodeStored,
  fallbackJson,
  storedJson,
  writeStored,
} from "./cells.js";
import {
  storageOf,
  type ValueColumn,
  type WorkspaceInput,
  type WorkspaceJson,
  type WorkspaceValue,
} from "./columns.js";
import { applyArrayDiff, ensureSlot } from "./slots.js";

/** A workspace's KV keys: names to columns (any column but `id()`). */
export type KvSchema = { readonly [name: string]: ValueColumn };

/** One KV key of a workspace. */
export interface KvHelper<C extends ValueColumn = ValueColumn> {
  /** The key's name. */
  readonly name: string;
  /** The key's column. */
  readonly schema: C;
  /**
   * The value: for `ytext` and `tags` the live `Y.Text` / `Y.Array`, created on first use; for
   * other columns the stored value, else the default (a fresh copy), else `null`.
   */
  get(): WorkspaceValue<C>;
  /**
   * Validates and writes `value` (text and tags as the smallest diff of the live type). A value
   * that does not validate throws `ValidationError` (`INVALID_VALUE`, with `issues`) and changes
   * nothing; writing the value already stored changes nothing either.
   */
  set(value: WorkspaceInput<C>): void;
  /** Restores the default: deletes a plain value; edits text and tags back to their default (or deletes a nullable one without). */
  reset(): void;
  /**
   * Calls `callback` with the new value after every transaction that changes it, made here or
   * received from another client (edits inside a `Y.Text` or `Y.Array` included). Returns the
   * function that stops it.
   */
  observe(callback: (value: WorkspaceValue<C>) => void): () => void;
  /** The value's JSON form: text as a string, tags as an array, dates as `{ date, timeZone }`. */
  toJSON(): WorkspaceJson<C>;
  /** `set()` from the JSON form (as an HTTP body carries it). */
  setJSON(json: unknown): void;
}

/** What `$kv.$observe` reports: the keys one transaction changed. */
export interface KvChange<Name extends string = string> {
  /** The keys whose values changed, in definition order. */
  readonly keys: Name[];
  /** Whether the transaction was made on this document rather than applied from an update. */
  readonly local: boolean;
  /** The transaction's origin (what the writer passed to `doc.transact`, or a provider). */
  readonly origin: unknown;
}

/** `$kv`: a helper per key, and `$`-prefixed members for all of them. */
export type KvHelpers<K extends KvSchema> = {
  readonly [N in keyof K & string]: KvHelper<K[N]>;
} & {
  /** Every key's helper, in definition order. */
  $all(): KvHelper<K[keyof K & string]>[];
  /** Every key's JSON form. */
  $toJSON(): { [N in keyof K & string]: WorkspaceJson<K[N]> };
  /** Calls `callback` after every transaction that changes any key. Returns the function that stops it. */
  $observe(callback: (change: KvChange<keyof K & string>) => void): () => void;
};

/**
 * The `$kv` helpers of `schema` over `doc`; `origin` marks the transactions they make.
 *
 * @example
 * const kv = createKvHelpers(new Y.Doc(), { theme: text({ default: "light" }) });
 * kv.theme.set("dark");
 */
export function createKvHelpers<K extends KvSchema>(
  doc: Y.Doc,
  schema: K,
  origin: unknown = null,
): KvHelpers<K> {
  const map = doc.getMap<unknown>("kv");
  const helpers = Object.entries(schema).map(
    ([name, column]) => new KvHelperImpl(doc, map, name, column, origin),
  );
  const names = helpers.map((helper) => helper.name);
  const members: Record<string, unknown> = Object.fromEntries(helpers.map((h) => [h.name, h]));
  members.$all = () => [...helpers];
  members.$toJSON = () => Object.fromEntries(helpers.map((h) => [h.name, h.toJSON()]));
  members.$observe = (callback: (change: KvChange) => void) => {
    assertCallback(callback);
    return observeKeys(map, (changed, transaction) => {
      const keys = names.filter((name) => changed.has(name));
      if (keys.length > 0) {
        notify(callback, { keys, local: transaction.local, origin: transaction.origin });
      }
    });
  };
  return Object.freeze(members) as KvHelpers<K>;
}

class KvHelperImpl<C extends ValueColumn> implements KvHelper<C> {
  readonly #subject: string;

  constructor(
    private readonly doc: Y.Doc,
    private readonly map: Y.Map<unknown>,
    readonly name: string,
    readonly schema: C,
    private readonly origin: unknown,
  ) {
    this.#subject = `workspace key ${JSON.stringify(name)}`;
  }

  get(): WorkspaceValue<C> {
    const raw = this.map.get(this.name);
    const decoded = decodeStored(this.schema, raw);
    if (decoded !== undefined) return decoded.value as WorkspaceValue<C>;
    if (storageOf(this.schema) === "value") return this.schema.defaultValue() as WorkspaceValue<C>;
    if (fallbackJson(this.schema) === null) return null as WorkspaceValue<C>;
    return this.#create(raw === undefined) as WorkspaceValue<C>;
  }

  set(value: WorkspaceInput<C>): void {
    const checked = checkInput(this.schema, value);
    if (!checked.ok) throw new ValidationError(this.#subject, checked.issues);
    this.#write(checked.value);
  }

  reset(): void {
    if (storageOf(this.schema) !== "value") {
      const fallback = fallbackJson(this.schema);
      if (fallback !== null) {
        this.#write(fallback);
        return;
      }
    }
    if (this.map.has(this.name)) this.doc.transact(() => this.map.delete(this.name), this.origin);
  }

  observe(callback: (value: WorkspaceValue<C>) => void): () => void {
    assertCallback(callback);
    return observeKeys(this.map, (changed) => {
      if (changed.has(this.name)) notify(callback, this.get());
    });
  }

  toJSON(): WorkspaceJson<C> {
    return storedJson(this.schema, this.map.get(this.name)) as WorkspaceJson<C>;
  }

  setJSON(json: unknown): void {
    this.set(this.schema.fromJSON(json) as WorkspaceInput<C>);
  }

  #write(stored: unknown): void {
    this.doc.transact(
      () => writeStored(this.map, this.name, this.schema, stored, () => this.#slot()),
      this.origin,
    );
  }

  #slot(): Y.Text | Y.Array<unknown> {
    const kind = this.schema.kind === "ytext" ? "ytext" : "tags";
    return ensureSlot(this.doc, "kv", this.name, kind, constantDefault(this.schema));
  }

  /** Creates the text or tags of a key that holds none; a default only this client computes is written after. */
  #create(wasUnset: boolean): Y.Text | Y.Array<unknown> {
    let slot: Y.Text | Y.Array<unknown> | undefined;
    this.doc.transact(() => {
      slot = this.#slot();
      if (wasUnset && slot instanceof Y.Array && constantDefault(this.schema) === undefined) {
        applyArrayDiff(slot, (this.schema.defaultValue() as string[] | null) ?? []);
      }
    }, this.origin);
    return slot as Y.Text | Y.Array<unknown>;
  }
}

/**
 * Observes the keys of a root map changed by each transaction: set or deleted at the root, or
 * edited inside the Y type a key holds.
 */
export function observeKeys(
  map: Y.Map<unknown>,
  onChange: (keys: ReadonlySet<string>, transaction: Y.Transaction) => void,
): () => void {
  const handler = (events: Y.YEvent<Y.AbstractType<unknown>>[], transaction: Y.Transaction) => {
    const keys = new Set<string>();
    for (const event of events) {
      if (event.target === map) {
        for (const key of (event as Y.YMapEvent<unknown>).keysChanged) keys.add(key);
      } else if (typeof event.path[0] === "string") {
        keys.add(event.path[0]);
      }
    }
    if (keys.size > 0) onChange(keys, transaction);
  };
  map.observeDeep(handler);
  return () => map.unobserveDeep(handler);
}

export function assertCallback(callback: unknown): void {
  if (typeof callback !== "function") {
    fail("INVALID_ARGUMENT", `observe takes a function, got ${describe(callback)}`);
  }
}

/**
 * Runs an observer outside Yjs's own error handling: an observer that throws is a bug of the
 * caller, surfaced like an uncaught error, and must not fail the write that triggered it.
 */
export function notify<T>(callback: (value: T) => void, value: T): void {
  try {
    callback(value);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}
