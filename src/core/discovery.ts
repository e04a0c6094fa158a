/**
 * What a database holds, across namespaces: the namespaces that have live entries, and how many
 * entries and bytes each holds. For administration and discovery faces; it reads through the one
 * scoped read path with {@link WHOLE_DATABASE}, so a face must filter the answer by what its
 * caller may see.
 */
import { concatBytes, encodeKey } from "../codec/key.js";
import type { RawEntry } from "../contract/index.js";
import type { Database } from "./database.js";
import { namespaceOf, WHOLE_DATABASE } from "./scope.js";

type Reader = Pick<Database, "read" | "count">;

/** Every stored key starts with its namespace's name, a string part: tag 0x02. */
const FIRST_KEY = Uint8Array.of(0x02);
const PAST_LAST_KEY = Uint8Array.of(0x03);

/** The stored range of one namespace: its prefix up to, not including, prefix + 0xff. */
export function namespaceRange(name: string): { start: Uint8Array; end: Uint8Array } {
  const start = encodeKey([name]);
  return { start, end: concatBytes(start, 0xff) };
}

/**
 * The names of the namespaces with at least one live entry, in key order (the default
 * namespace `""` first, Cellar's own `$…` ones included), after `after` when given. A skip-scan:
 * it reads one key, takes its namespace, and jumps past that namespace's whole range, so it costs
 * one point read per namespace, however many entries each holds.
 */
export async function listNamespaces(
  db: Reader,
  options: { limit: number; after?: string },
): Promise<string[]> {
  const names: string[] = [];
  let from = options.after === undefined ? FIRST_KEY : namespaceRange(options.after).end;
  while (names.length < options.limit) {
    const [found] = await db.read(
      [{ start: from, end: PAST_LAST_KEY, limit: 1, reverse: false }],
      WHOLE_DATABASE,
    );
    const entry = found?.[0];
    if (!entry) break;
    const { name, prefixLength } = namespaceOf(entry.key);
    names.push(name);
    from = concatBytes(entry.key.subarray(0, prefixLength), 0xff);
  }
  return names;
}

/** Live entries of namespace `name`. */
export function countNamespace(db: Reader, name: string): Promise<number> {
  return db.count(namespaceRange(name), WHOLE_DATABASE);
}

export interface NamespaceUsage {
  readonly entries: number;
  /**
   * Encoded key and value bytes of its live entries: approximate, since it leaves out what
   * storage adds (metadata, revision history, indexes, free pages).
   */
  readonly bytes: number;
}

const PAGE = 1000;
const utf8 = new TextEncoder();

/**
 * Entries and approximate bytes of namespace `name`, read in pages of 1000 entries: it reads
 * every live entry of the namespace, so its cost grows with the namespace.
 */
export async function namespaceUsage(db: Reader, name: string): Promise<NamespaceUsage> {
  const range = namespaceRange(name);
  let entries = 0;
  let bytes = 0;
  let start = range.start;
  for (;;) {
    const [page = []] = await db.read(
      [{ start, end: range.end, limit: PAGE, reverse: false }],
      WHOLE_DATABASE,
    );
    for (const entry of page) {
      entries++;
      bytes += entry.key.length + valueBytes(entry);
    }
    const last = page.at(-1);
    if (page.length < PAGE || !last) return { entries, bytes };
    start = concatBytes(last.key, 0x00);
  }
}

function valueBytes({ value }: RawEntry): number {
  return value.encoding === "json" ? utf8.encode(value.data).length : value.data.length;
}
