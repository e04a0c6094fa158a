/**
 * Shared Y types in a workspace document: created so that concurrent creation converges, and
 * edited by the smallest diff so that concurrent edits merge.
 *
 * Yjs resolves two clients that set a map key at the same time by keeping one value, so two
 * clients that each create the `Y.Text` of a new KV key (or the `Y.Map` of a new table) while
 * apart would lose one side's edits on merge. A slot directly under a root map is therefore
 * created by a *genesis update*: the same bytes on every client, written by a client id derived
 * from the slot's name, kind and initial content. Every client that creates the slot applies
 * those bytes, Yjs sees one item, and edits made on either side land in the same type.
 */
import diff from "fast-diff";
import * as Y from "yjs";

/** The origin of transactions that create a slot from its genesis update. */
export const GENESIS_ORIGIN = Symbol("cellar.workspace.genesis");

/** The root maps of a workspace document. */
export type Root = "kv" | "tables";

/** A slot's kind: collaborative text, a tags array, or a table's map of rows. */
export type SlotKind = "ytext" | "tags" | "table";

type SlotType<K extends SlotKind> = K extends "ytext"
  ? Y.Text
  : K extends "tags"
    ? Y.Array<unknown>
    : Y.Map<unknown>;

const genesisCache = new Map<string, Uint8Array>();

/**
 * A 32-bit client id from the slot's identity (FNV-1a). A random client colliding with it is as
 * likely as two random Yjs clients colliding.
 */
function clientIdOf(identity: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < identity.length; i++) {
    hash ^= identity.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function genesisUpdate(root: Root, key: string, kind: SlotKind, initial: unknown): Uint8Array {
  // The identity covers the content, so a different default never reuses an id for other bytes.
  const identity = JSON.stringify(["cellar-workspace-slot", root, key, kind, initial ?? null]);
  let update = genesisCache.get(identity);
  if (update === undefined) {
    const doc = new Y.Doc({ gc: false });
    doc.clientID = clientIdOf(identity);
    doc.getMap(root).set(key, createType(kind, initial));
    update = Y.encodeStateAsUpdate(doc);
    doc.destroy();
    if (genesisCache.size >= 10_000) genesisCache.clear();
    genesisCache.set(identity, update);
  }
  return update;
}

function createType(kind: SlotKind, initial: unknown): Y.Text | Y.Array<unknown> | Y.Map<unknown> {
  if (kind === "ytext") return new Y.Text(typeof initial === "string" ? initial : undefined);
  if (kind === "tags") return Y.Array.from(Array.isArray(initial) ? [...initial] : []);
  return new Y.Map();
}

function isKind<K extends SlotKind>(value: unknown, kind: K): value is SlotType<K> {
  if (kind === "ytext") return value instanceof Y.Text;
  if (kind === "tags") return value instanceof Y.Array;
  return value instanceof Y.Map;
}

/**
 * The shared type at `root[key]`, created if the key holds none: from its genesis update when
 * the key was never set, else (the slot was deleted or replaced since) as a type of this
 * client's own. `initial` is content every client agrees on (a constant default).
 *
 * @example
 * const text = ensureSlot(doc, "kv", "notes", "ytext", "");
 */
export function ensureSlot<K extends SlotKind>(
  doc: Y.Doc,
  root: Root,
  key: string,
  kind: K,
  initial?: string | readonly string[],
): SlotType<K> {
  const map = doc.getMap<unknown>(root);
  const current = map.get(key);
  if (isKind(current, kind)) return current;
  if (!map.has(key)) {
    // Applying an update marks the enclosing transaction remote, and Yjs then gives a document
    // whose own edits appear in a remote transaction a new client id: keep a local one local.
    const outer = doc._transaction;
    const local = outer?.local;
    Y.applyUpdate(doc, genesisUpdate(root, key, kind, initial), GENESIS_ORIGIN);
    if (outer && local !== undefined) outer.local = local;
    const created = map.get(key);
    if (isKind(created, kind)) return created;
  }
  return map.set(key, createType(kind, initial)) as SlotType<K>;
}

/**
 * Edits `text` into `target` by a character diff, so unchanged stretches keep their identity and
 * edits other clients make there concurrently survive.
 *
 * @example
 * applyTextDiff(text, "Hello, world"); // from "Hello world": one insertion of ","
 */
export function applyTextDiff(text: Y.Text, target: string): void {
  const current = text.toString();
  if (current === target) return;
  let index = 0;
  for (const [op, chunk] of diff(current, target)) {
    if (op === diff.EQUAL) {
      index += chunk.length;
    } else if (op === diff.DELETE) {
      text.delete(index, chunk.length);
    } else {
      text.insert(index, chunk);
      index += chunk.length;
    }
  }
}

/** Beyond this many compared pairs, the middle of the array is replaced rather than diffed. */
const LCS_LIMIT = 250_000;

/**
 * Edits `array` into `target` by deleting the items outside a longest common subsequence and
 * inserting the missing ones, so concurrent additions and removals of other items merge.
 *
 * @example
 * applyArrayDiff(tags, ["a", "c", "d"]); // from ["a", "b", "c"]: delete "b", insert "d"
 */
export function applyArrayDiff(array: Y.Array<unknown>, target: readonly unknown[]): void {
  const current = array.toArray();
  let start = 0;
  while (start < current.length && start < target.length && current[start] === target[start]) {
    start++;
  }
  let endCurrent = current.length;
  let endTarget = target.length;
  while (
    endCurrent > start &&
    endTarget > start &&
    current[endCurrent - 1] === target[endTarget - 1]
  ) {
    endCurrent--;
    endTarget--;
  }
  const from = current.slice(start, endCurrent);
  const to = target.slice(start, endTarget);
  if (from.length === 0 && to.length === 0) return;
  let index = start;
  for (const [op, items] of arrayOps(from, to)) {
    if (op === "keep") index += items.length;
    else if (op === "delete") array.delete(index, items.length);
    else {
      array.insert(index, items);
      index += items.length;
    }
  }
}

type ArrayOp = ["keep" | "delete" | "insert", unknown[]];

function arrayOps(from: readonly unknown[], to: readonly unknown[]): ArrayOp[] {
  if (from.length === 0 || to.length === 0 || from.length * to.length > LCS_LIMIT) {
    return [
      ["delete", [...from]],
      ["insert", [...to]],
    ];
  }
  // lengths[i][j]: the LCS length of from[i..] and to[j..].
  const width = to.length + 1;
  const lengths = new Uint32Array((from.length + 1) * width);
  for (let i = from.length - 1; i >= 0; i--) {
    for (let j = to.length - 1; j >= 0; j--) {
      lengths[i * width + j] =
        from[i] === to[j]
          ? lengths[(i + 1) * width + j + 1]! + 1
          : Math.max(lengths[(i + 1) * width + j]!, lengths[i * width + j + 1]!);
    }
  }
  const ops: ArrayOp[] = [];
  const push = (op: ArrayOp[0], item: unknown) => {
    const last = ops[ops.length - 1];
    if (last && last[0] === op) last[1].push(item);
    else ops.push([op, [item]]);
  };
  let i = 0;
  let j = 0;
  while (i < from.length && j < to.length) {
    if (from[i] === to[j]) {
      push("keep", from[i++]);
      j++;
    } else if (lengths[(i + 1) * width + j]! >= lengths[i * width + j + 1]!) {
      push("delete", from[i++]);
    } else {
      push("insert", to[j++]);
    }
  }
  while (i < from.length) push("delete", from[i++]);
  while (j < to.length) push("insert", to[j++]);
  return ops;
}
