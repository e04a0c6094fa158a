/**
 * The fast path of `checkUpdate`: proves an update valid from its decoded structs and the
 * document it will be applied to, without copying the document. It recognises what clients send
 * all the time (text typed into a `ytext`, tags added, a plain KV value or row field set, rows
 * and keys deleted) and answers `false` for anything else, which the full check then decides.
 * A `false` is never an error: only a `true` must be right.
 */
import * as Y from "yjs";
import { checkStored } from "./cells.js";
import { storageOf, type ValueColumn } from "./columns.js";
import type { AnyWorkspace } from "./define.js";
import { isRequiredValue, type TableSchema } from "./tables.js";

type Struct = Y.Item | Y.GC | Y.Skip;
type Decoded = ReturnType<typeof Y.decodeUpdate>;

/** Where an item lives: the container's path from a root map (`["kv", "notes"]`…) and its key. */
interface Place {
  readonly path: readonly string[];
  /** The container, when it is in the document (a root map, a Y.Text, a Y.Array or a row). */
  readonly type: Y.AbstractType<unknown> | null;
  readonly key: string | null;
}

/** Items in a chain of left origins followed within one update before giving up. */
const MAX_CHAIN = 10_000;

/**
 * Whether applying `update` to `doc` surely leaves every KV key and row it touches valid.
 *
 * @example
 * if (!provablyValid(app, doc, update)) fullCheck();
 */
export function provablyValid(definition: AnyWorkspace, doc: Y.Doc, update: Uint8Array): boolean {
  // Updates the document holds back for missing predecessors may land with this one.
  if (doc.store.pendingStructs !== null || doc.store.pendingDs !== null) return false;
  try {
    return new FastCheck(definition, doc, Y.decodeUpdate(update)).valid();
  } catch {
    return false;
  }
}

class FastCheck {
  readonly #byClient = new Map<number, Struct[]>();
  /** `containerId:field` of the row fields this update sets to a valid value. */
  readonly #fieldsSet = new Set<string>();
  readonly #places = new Map<Struct, Place | null>();

  constructor(
    private readonly definition: AnyWorkspace,
    private readonly doc: Y.Doc,
    private readonly decoded: Decoded,
  ) {
    for (const struct of decoded.structs) {
      const list = this.#byClient.get(struct.id.client) ?? [];
      list.push(struct);
      this.#byClient.set(struct.id.client, list);
    }
  }

  valid(): boolean {
    for (const struct of this.decoded.structs) {
      if (struct instanceof Y.Skip || struct instanceof Y.GC) continue;
      const known = Y.getState(this.doc.store, struct.id.client);
      if (struct.id.clock + struct.length <= known) continue;
      if (!this.#validItem(struct as Y.Item)) return false;
    }
    for (const [client, ranges] of this.decoded.ds.clients) {
      for (const range of ranges) {
        for (const struct of this.#structsIn(client, range.clock, range.len)) {
          if (struct === undefined) return false;
          if (!this.#validDeletion(struct)) return false;
        }
      }
    }
    return true;
  }

  #validItem(item: Y.Item): boolean {
    const place = this.#placeOf(item);
    if (place === null) return false;
    const content = item.content;
    const { path, key } = place;
    if (key === null) {
      const column = this.#listColumn(path, place.type);
      if (column === undefined) return false;
      if (content instanceof Y.ContentDeleted) return true;
      if (column.kind === "ytext") {
        return content instanceof Y.ContentString || content instanceof Y.ContentFormat;
      }
      return (
        content instanceof Y.ContentAny &&
        content
          .getContent()
          .every((tag) => typeof tag === "string" && (column.options?.includes(tag) ?? true))
      );
    }
    if (!(content instanceof Y.ContentAny) || content.getContent().length !== 1) return false;
    const value = content.getContent()[0];
    if (path.length === 1 && path[0] === "kv") {
      const column = this.#kvColumn(key);
      return (
        column !== undefined &&
        (storageOf(column) === "value" || value === null) &&
        checkStored(column, value).length === 0
      );
    }
    if (path.length === 3 && path[0] === "tables" && place.type !== null) {
      const schema = this.#table(path[1]!);
      if (schema === undefined || !Object.hasOwn(schema, key)) return false;
      const column = schema[key]!;
      const ok =
        column.kind === "id"
          ? value === path[2]
          : (storageOf(column) === "value" || value === null) &&
            checkStored(column as ValueColumn, value).length === 0;
      if (ok) this.#fieldsSet.add(`${idKey(place.type)}:${key}`);
      return ok;
    }
    return false;
  }

  #validDeletion(struct: Struct): boolean {
    if (!(struct instanceof Y.Item)) return true;
    const place = this.#placeOf(struct);
    if (place === null) return false;
    const { path, key } = place;
    if (key === null) return this.#listColumn(path, place.type) !== undefined;
    // A key of `kv` reads its default once deleted; a row or a table may go.
    if (path.length <= 2) return path[0] === "kv" ? path.length === 1 : path[0] === "tables";
    if (path.length !== 3 || path[0] !== "tables" || place.type === null) return false;
    // The fields of a row deleted whole go with it.
    const row = place.type._item;
    if (row !== null && (row.deleted || Y.isDeleted(this.decoded.ds, row.id))) return true;
    const schema = this.#table(path[1]!);
    const column = schema && Object.hasOwn(schema, key) ? schema[key] : undefined;
    if (column === undefined) return true;
    const required = column.kind === "id" || isRequiredValue(column);
    return !required || this.#fieldsSet.has(`${idKey(place.type)}:${key}`);
  }

  /** The column of a `ytext` or `tags` slot the container at `path` is, if it is one. */
  #listColumn(
    path: readonly string[],
    type: Y.AbstractType<unknown> | null,
  ): ValueColumn | undefined {
    let column: ValueColumn | undefined;
    if (path.length === 2 && path[0] === "kv") column = this.#kvColumn(path[1]!);
    if (path.length === 4 && path[0] === "tables") {
      const schema = this.#table(path[1]!);
      const field = schema && Object.hasOwn(schema, path[3]!) ? schema[path[3]!] : undefined;
      if (field && field.kind !== "id") column = field;
    }
    if (column?.kind === "ytext") return type instanceof Y.Text ? column : undefined;
    if (column?.kind === "tags") return type instanceof Y.Array ? column : undefined;
    return undefined;
  }

  #kvColumn(key: string): ValueColumn | undefined {
    return Object.hasOwn(this.definition.kv, key)
      ? (this.definition.kv[key] as ValueColumn)
      : undefined;
  }

  #table(name: string): TableSchema | undefined {
    return Object.hasOwn(this.definition.tables, name)
      ? (this.definition.tables[name] as TableSchema)
      : undefined;
  }

  /** Where `item` lives, following its origins through this update to an item of the document. */
  #placeOf(item: Y.Item): Place | null {
    const chain: Y.Item[] = [];
    let current: Struct | undefined = item;
    let place: Place | null | undefined;
    while (place === undefined) {
      if (!(current instanceof Y.Item) || chain.length > MAX_CHAIN) return null;
      const cached = this.#places.get(current);
      if (cached !== undefined) {
        place = cached;
        break;
      }
      chain.push(current);
      const inDoc = current.id.clock < Y.getState(this.doc.store, current.id.client);
      if (
        inDoc &&
        current.parent !== null &&
        typeof current.parent !== "string" &&
        !(current.parent instanceof Y.ID)
      ) {
        place = placeOfType(this.doc, current.parent, current.parentSub);
      } else if (typeof current.parent === "string") {
        place = isSchemaRoot(current.parent)
          ? { path: [current.parent], type: null, key: current.parentSub }
          : null;
      } else if (current.parent instanceof Y.ID) {
        const parent = this.#find(current.parent);
        // A container created by this update: left to the full check.
        const type =
          parent instanceof Y.Item && parent.content instanceof Y.ContentType && this.#inDoc(parent)
            ? parent.content.type
            : null;
        place = type === null ? null : placeOfType(this.doc, type, current.parentSub);
      } else {
        const neighbour: Y.ID | null = current.origin ?? current.rightOrigin;
        current = neighbour === null ? undefined : this.#find(neighbour);
      }
    }
    for (const each of chain) this.#places.set(each, place);
    return place;
  }

  #inDoc(struct: Struct): boolean {
    return struct.id.clock < Y.getState(this.doc.store, struct.id.client);
  }

  /** The struct holding `id`: the document's when it has it, else this update's. */
  #find(id: Y.ID): Struct | undefined {
    if (id.clock < Y.getState(this.doc.store, id.client)) {
      const structs = this.doc.store.clients.get(id.client);
      return structs
        ? (structs[Y.findIndexSS(structs, id.clock)] as Struct | undefined)
        : undefined;
    }
    const own = this.#byClient.get(id.client);
    return own?.find(
      (struct) => struct.id.clock <= id.clock && id.clock < struct.id.clock + struct.length,
    );
  }

  /** The structs covering `[clock, clock + len)` of `client`; `undefined` for a part no one has. */
  *#structsIn(client: number, clock: number, len: number): Generator<Struct | undefined> {
    let at = clock;
    while (at < clock + len) {
      const struct = this.#find(Y.createID(client, at));
      yield struct;
      if (struct === undefined) return;
      at = struct.id.clock + struct.length;
    }
  }
}

function isSchemaRoot(name: string): boolean {
  return name === "kv" || name === "tables";
}

/** The place of an entry `key` of `type`, a type of the document, by walking up to its root. */
function placeOfType(doc: Y.Doc, type: Y.AbstractType<unknown>, key: string | null): Place | null {
  const path: string[] = [];
  let current: Y.AbstractType<unknown> = type;
  while (current._item !== null) {
    const sub = current._item.parentSub;
    const parent = current._item.parent;
    if (sub === null || !(parent instanceof Y.AbstractType) || path.length > 4) return null;
    path.unshift(sub);
    current = parent;
  }
  const root = Y.findRootTypeKey(current);
  if (!isSchemaRoot(root) || doc.share.get(root) !== current) return null;
  return { path: [root, ...path], type, key };
}

function idKey(type: Y.AbstractType<unknown>): string {
  const id = type._item?.id;
  return id ? `${id.client}/${id.clock}` : "root";
}
