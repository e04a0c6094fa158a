/**
 * Selectors, cursors and the list iterator, with Deno KV's semantics:
 *
 * - `{ prefix }` covers keys strictly longer than `prefix` that start with it (the key equal to
 *   the prefix is not included); `{ prefix, start }` starts at `start` inclusive and
 *   `{ prefix, end }` stops before `end`; both bounds must lie inside the prefix.
 * - `{ start, end }` covers `start <= key < end`.
 * - A cursor is the base64url of the last returned key, less the selector's common prefix. Going
 *   forward the next page starts just after it; in reverse it ends just before it. A cursor
 *   that points outside the selector's range is refused with `INVALID_CURSOR`.
 * - The cursor `""`, which an exhausted iterator reports, means no cursor: the list starts over
 *   from the beginning of the range (the end, in reverse), as it does in Deno KV.
 */
import { fromBase64Url, toBase64Url } from "../codec/bytes.js";
import { compareBytes, concatBytes, type KvKey, startsWith } from "../codec/key.js";
import { describe, fail, KvError } from "../errors.js";
import type { Keyspace } from "./keyspace.js";
import type { KvEntry, KvListSelector } from "./types.js";

export interface ResolvedSelector {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly prefix: Uint8Array | null;
  /** Bytes every key in range shares; cursors omit them. */
  readonly common: Uint8Array;
}

const CURSOR = /^[A-Za-z0-9_-]*={0,2}$/;

export function resolveSelector(selector: KvListSelector, keyspace: Keyspace): ResolvedSelector {
  if (typeof selector !== "object" || selector === null) {
    fail(
      "INVALID_SELECTOR",
      `a selector is an object with prefix, start or end, got ${describe(selector)}`,
    );
  }
  const { prefix, start, end } = selector as { prefix?: KvKey; start?: KvKey; end?: KvKey };
  if (prefix !== undefined) {
    if (start !== undefined && end !== undefined) {
      fail("INVALID_SELECTOR", "a selector with a prefix takes start or end, not both");
    }
    const p = keyspace.encodeBound(prefix);
    return {
      start:
        start === undefined
          ? concatBytes(p, 0x00)
          : inPrefix(keyspace.encodeBound(start), p, "start"),
      end: end === undefined ? concatBytes(p, 0xff) : inPrefix(keyspace.encodeBound(end), p, "end"),
      prefix: p,
      common: p,
    };
  }
  if (start === undefined || end === undefined) {
    fail("INVALID_SELECTOR", "a selector needs a prefix, or both start and end");
  }
  const s = keyspace.encodeBound(start);
  const e = keyspace.encodeBound(end);
  if (compareBytes(s, e) > 0) fail("INVALID_SELECTOR", "the start key is greater than the end key");
  return { start: s, end: e, prefix: null, common: cursorBase(s, e) };
}

/**
 * The bytes a `{ start, end }` selector's cursors leave out: the common prefix of its bounds, less
 * its last byte when that is all of `start` (start is a prefix of end). Otherwise the key `start`
 * itself, when it exists, would have the cursor `""`, which means "no cursor", and a paging loop
 * would read it again and again.
 */
function cursorBase(start: Uint8Array, end: Uint8Array): Uint8Array {
  const common = commonPrefix(start, end);
  return common.length === start.length ? common.subarray(0, common.length - 1) : common;
}

function inPrefix(key: Uint8Array, prefix: Uint8Array, which: string): Uint8Array {
  if (key.length <= prefix.length || !startsWith(key, prefix)) {
    fail("INVALID_SELECTOR", `the ${which} key is not inside the selector's prefix`);
  }
  return key;
}

function commonPrefix(a: Uint8Array, b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return a.subarray(0, i);
}

export function encodeCursor(selector: ResolvedSelector, key: Uint8Array): string {
  return toBase64Url(key.subarray(selector.common.length));
}

/** The byte range left to read after `cursor`. */
export function rangeAfterCursor(
  selector: ResolvedSelector,
  cursor: string | undefined,
  reverse: boolean,
): { start: Uint8Array; end: Uint8Array } {
  if (cursor === undefined || cursor === "") return { start: selector.start, end: selector.end };
  if (typeof cursor !== "string" || !CURSOR.test(cursor)) {
    fail("INVALID_CURSOR", `a cursor is a base64url string, got ${describe(cursor)}`);
  }
  // CURSOR matched: the text is base64url.
  const boundary = concatBytes(selector.common, fromBase64Url(cursor)!);
  const range = reverse
    ? { start: selector.start, end: boundary }
    : { start: concatBytes(boundary, 0x00), end: selector.end };
  const outside =
    compareBytes(range.start, selector.start) < 0 ||
    compareBytes(range.end, selector.end) > 0 ||
    (selector.prefix !== null &&
      !(startsWith(range.start, selector.prefix) && startsWith(range.end, selector.prefix)));
  if (outside) fail("INVALID_CURSOR", "the cursor does not belong to this selector");
  return range;
}

/** The range left after `key`, a key this selector returned. */
function afterKey(
  selector: ResolvedSelector,
  key: Uint8Array,
  reverse: boolean,
): { start: Uint8Array; end: Uint8Array } {
  return reverse
    ? { start: selector.start, end: key }
    : { start: concatBytes(key, 0x00), end: selector.end };
}

/** Reads up to `limit` decoded entries of a byte range. */
export type PullBatch<T> = (
  range: { start: Uint8Array; end: Uint8Array },
  limit: number,
  reverse: boolean,
) => Promise<{ entry: KvEntry<T>; key: Uint8Array }[]>;

/**
 * The async iterator `list()` returns. `cursor` is the position after the last yielded entry; it
 * is `""` once the range is exhausted, and reading it before the first entry throws.
 *
 * @example
 * const iter = kv.list({ prefix: ["users"] }, { limit: 10 });
 * for await (const entry of iter) console.log(entry.key, entry.value);
 * const next = kv.list({ prefix: ["users"] }, { limit: 10, cursor: iter.cursor });
 */
export class KvListIterator<T = unknown> implements AsyncIterableIterator<KvEntry<T>> {
  #buffer: { entry: KvEntry<T>; key: Uint8Array }[] = [];
  #cursor: string | undefined;
  /** The last yielded key; its cursor is built only when asked for. */
  #lastKey: Uint8Array | undefined;
  #lastBatch = false;
  #done = false;
  #count = 0;

  #selector: ResolvedSelector | null;
  readonly #resolve: (() => Promise<ResolvedSelector>) | null;

  /** `selector` may be found lazily (an index walk loads its catalog first). */
  constructor(
    selector: ResolvedSelector | (() => Promise<ResolvedSelector>),
    private readonly pull: PullBatch<T>,
    private readonly options: {
      limit?: number;
      cursor?: string;
      reverse: boolean;
      batchSize: number;
    },
  ) {
    // An iterator started from "" has no position yet, so reading its cursor throws, as in Deno.
    this.#cursor = options.cursor === "" ? undefined : options.cursor;
    this.#selector = typeof selector === "function" ? null : selector;
    this.#resolve = typeof selector === "function" ? selector : null;
  }

  /** The selector; set by the first `next()` when it is found lazily. */
  get #resolved(): ResolvedSelector {
    return this.#selector!;
  }

  get cursor(): string {
    if (this.#lastKey !== undefined) {
      this.#cursor = encodeCursor(this.#resolved, this.#lastKey);
      this.#lastKey = undefined;
    }
    if (this.#cursor === undefined) {
      throw new KvError("INVALID_ARGUMENT", "cannot get the cursor before the first iteration");
    }
    return this.#cursor;
  }

  async next(): Promise<IteratorResult<KvEntry<T>>> {
    if (this.#done || (this.options.limit !== undefined && this.#count >= this.options.limit)) {
      return { done: true, value: undefined };
    }
    if (this.#buffer.length === 0 && !this.#lastBatch) {
      this.#selector ??= await this.#resolve!();
      const range = this.#lastKey
        ? afterKey(this.#resolved, this.#lastKey, this.options.reverse)
        : rangeAfterCursor(this.#resolved, this.#cursor, this.options.reverse);
      const batch = await this.pull(range, this.options.batchSize, this.options.reverse);
      if (batch.length < this.options.batchSize) this.#lastBatch = true;
      this.#buffer = batch.reverse();
    }
    const item = this.#buffer.pop();
    if (!item) {
      this.#done = true;
      this.#cursor = "";
      this.#lastKey = undefined;
      return { done: true, value: undefined };
    }
    this.#lastKey = item.key;
    this.#count++;
    return { done: false, value: item.entry };
  }

  async return(): Promise<IteratorResult<KvEntry<T>>> {
    this.#done = true;
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
