/**
 * What a list does with the cursor `""`, observed through nothing but the list API Deno KV and
 * Cellar share, so the same code runs on both (`deno-empty-cursor.js` runs it in Deno). Only
 * what both promise is recorded: which keys come back, in which order, whether a call throws,
 * and the cursor of an exhausted iterator. Cursor strings of unfinished lists are left out: each
 * implementation encodes its own.
 */

type Key = (string | number)[];
type Selector =
  | { prefix: Key }
  | { prefix: Key; start: Key }
  | { prefix: Key; end: Key }
  | {
      start: Key;
      end: Key;
    };

export interface ListingKv {
  set(key: Key, value: unknown): Promise<unknown>;
  list(
    selector: Selector,
    options: { reverse: boolean; limit?: number; cursor?: string },
  ): AsyncIterable<{ key: readonly unknown[] }> & { readonly cursor: string };
}

const KEYS: Key[] = [["a"], ["a", 1], ["a", 2], ["a", 3], ["a", "x"], ["ab", 1], ["b", 1]];

const SELECTORS: Record<string, Selector> = {
  prefix: { prefix: ["a"] },
  "prefix and start": { prefix: ["a"], start: ["a", 2] },
  "prefix and end": { prefix: ["a"], end: ["a", 3] },
  "start and end": { start: ["a", 1], end: ["b", 2] },
};

/** Keys as JSON text, or "throws". */
async function keys(
  kv: ListingKv,
  selector: Selector,
  options: { reverse: boolean; limit?: number; cursor?: string },
): Promise<{ keys: string[]; cursor: string } | "throws"> {
  try {
    const iter = kv.list(selector, options);
    const out: string[] = [];
    for await (const entry of iter) out.push(JSON.stringify(entry.key));
    return { keys: out, cursor: iter.cursor };
  } catch {
    return "throws";
  }
}

export async function observeEmptyCursor(kv: ListingKv): Promise<Record<string, unknown>> {
  for (const key of KEYS) await kv.set(key, key.join("/"));
  const seen: Record<string, unknown> = {};
  for (const [shape, selector] of Object.entries(SELECTORS)) {
    for (const reverse of [false, true]) {
      const none = await keys(kv, selector, { reverse });
      const empty = await keys(kv, selector, { reverse, cursor: "" });
      const firstOfEmpty = await keys(kv, selector, { reverse, cursor: "", limit: 2 });
      let cursorBeforeIteration: string;
      try {
        cursorBeforeIteration = kv.list(selector, { reverse, cursor: "" }).cursor;
      } catch {
        cursorBeforeIteration = "throws";
      }
      // A paging loop that hands back whatever cursor it got, for longer than the range lasts.
      const pages: (string[] | "throws")[] = [];
      let cursor: string | undefined;
      for (let round = 0; round < 8; round++) {
        const page = await keys(kv, selector, {
          reverse,
          limit: 2,
          ...(cursor !== undefined && { cursor }),
        });
        if (page === "throws") {
          pages.push(page);
          break;
        }
        pages.push(page.keys);
        cursor = page.cursor;
      }
      seen[`${shape}${reverse ? ", reverse" : ""}`] = {
        none,
        empty,
        firstOfEmpty: firstOfEmpty === "throws" ? firstOfEmpty : firstOfEmpty.keys,
        cursorBeforeIteration,
        pages,
      };
    }
  }
  return seen;
}
