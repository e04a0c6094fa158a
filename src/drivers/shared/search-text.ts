/**
 * Text handling that the search drivers share: index specs checked once, text folded and split
 * into words or trigrams the way SQLite FTS5's `unicode61 remove_diacritics 2` and `trigram
 * remove_diacritics 1` tokenizers do (closely: JavaScript's Unicode tables are not SQLite's),
 * and highlights built in JavaScript where an engine has no snippet function for its matches
 * (the memory driver; trigram indexes on PostgreSQL).
 */
import type { SearchIndexSpec, SearchQuery, SearchTokenizer } from "../../contract/search.js";
import { KvError } from "../../errors.js";

/** Most text fields of one search index: an engine's table has a column per field. */
export const MAX_SEARCH_FIELDS = 100;

const TOKENIZERS: readonly SearchTokenizer[] = ["word", "stemmed", "trigram"];

/** Refuses a spec no driver could store: ids and field counts become SQL names and columns. */
export function assertSearchSpec(spec: SearchIndexSpec): void {
  if (!Number.isSafeInteger(spec.id) || spec.id < 0)
    throw new KvError("INVALID_ARGUMENT", `a search index id is an integer >= 0, got ${spec.id}`);
  if (!Number.isInteger(spec.fields) || spec.fields < 1 || spec.fields > MAX_SEARCH_FIELDS) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `a search index has 1 to ${MAX_SEARCH_FIELDS} fields, got ${spec.fields}`,
    );
  }
  if (!TOKENIZERS.includes(spec.tokenizer))
    throw new KvError("INVALID_ARGUMENT", `unknown search tokenizer ${String(spec.tokenizer)}`);
  if (spec.tokenizer === "stemmed" && spec.language !== "english") {
    throw new KvError(
      "UNSUPPORTED",
      `stemmed search indexes stem English only, not ${JSON.stringify(spec.language)}`,
    );
  }
}

/** Whether two specs describe the same index (the language matters only to stemming). */
export function sameSpec(a: SearchIndexSpec, b: SearchIndexSpec): boolean {
  return (
    a.id === b.id &&
    a.fields === b.fields &&
    a.tokenizer === b.tokenizer &&
    (a.tokenizer !== "stemmed" || a.language === b.language)
  );
}

export function alreadyExists(spec: SearchIndexSpec): KvError {
  return new KvError(
    "ALREADY_EXISTS",
    `search index ${spec.id} exists with other fields or another tokenizer`,
  );
}

export function unknownIndex(id: number): KvError {
  return new KvError("NOT_FOUND", `search index ${id} does not exist`);
}

/** Refuses a document whose field count is not its index's. */
export function assertDocFields(spec: SearchIndexSpec, fields: readonly string[]): void {
  if (fields.length !== spec.fields) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `search index ${spec.id} has ${spec.fields} fields; a document for it had ${fields.length}`,
    );
  }
}

/**
 * A document's field as engines index it: U+0000 becomes a space, since SQLite's FTS5 reads
 * text only up to it and PostgreSQL's text cannot hold it; every driver does the same.
 */
export function searchableText(field: string): string {
  return field.includes("\u0000") ? field.replaceAll("\u0000", " ") : field;
}

/** A code point folded: lower case, without diacritics (NFD, marks dropped). */
function foldCodePoint(c: string): string {
  const code = c.codePointAt(0)!;
  if (code < 0x80) return code >= 0x41 && code <= 0x5a ? String.fromCharCode(code + 32) : c;
  return c.normalize("NFD").replace(MARKS, "").toLowerCase();
}

const MARKS = /\p{M}/gu;
const WORD_CHAR = /[\p{L}\p{N}\p{Co}]/u;

/** Text folded code point by code point, each piece with the UTF-16 offset it came from. */
interface Folded {
  readonly pieces: readonly string[];
  readonly from: readonly number[];
  /** The offset past the text's end. */
  readonly length: number;
}

function foldPieces(text: string): Folded {
  const pieces: string[] = [];
  const from: number[] = [];
  let at = 0;
  for (const c of text) {
    const folded = foldCodePoint(c);
    // A piece may fold to several code points (one per slot, so trigrams count code points).
    for (const part of folded) {
      pieces.push(part);
      from.push(at);
    }
    at += c.length;
  }
  return { pieces, from, length: text.length };
}

/** Text folded: lower case, without diacritics. */
export function fold(text: string): string {
  return foldPieces(text).pieces.join("");
}

/** A word of a text: folded, with its UTF-16 span in the text. */
export interface Word {
  readonly word: string;
  readonly start: number;
  readonly end: number;
}

/** The words of `text`: runs of letters and digits, folded. */
export function words(text: string): Word[] {
  const { pieces, from, length } = foldPieces(text);
  const out: Word[] = [];
  let start = -1;
  for (let i = 0; i <= pieces.length; i++) {
    const inWord = i < pieces.length && WORD_CHAR.test(pieces[i]!);
    if (inWord && start < 0) start = i;
    if (!inWord && start >= 0) {
      out.push({
        word: pieces.slice(start, i).join(""),
        start: from[start]!,
        end: i < pieces.length ? from[i]! : length,
      });
      start = -1;
    }
  }
  return out;
}

/** The trigrams of `text`, folded, with their spans; as FTS5's trigram tokenizer makes them. */
export function trigrams(text: string): Word[] {
  const { pieces, from, length } = foldPieces(text);
  const out: Word[] = [];
  for (let i = 0; i + 3 <= pieces.length; i++) {
    out.push({
      word: pieces[i]! + pieces[i + 1]! + pieces[i + 2]!,
      start: from[i]!,
      end: i + 3 < pieces.length ? from[i + 3]! : length,
    });
  }
  return out;
}

/**
 * The distinct trigrams a term of a trigram index is looked up by. `INVALID_QUERY` naming the
 * term when it is shorter than a trigram, which no trigram index can look for.
 */
export function queryTrigrams(text: string): string[] {
  const grams = [...new Set(trigrams(text).map((t) => t.word))];
  if (grams.length === 0) {
    throw new KvError(
      "INVALID_QUERY",
      `the search term ${JSON.stringify(text)} is shorter than 3 characters, the least a trigram index can look for`,
    );
  }
  return grams;
}

/**
 * Refuses a parsed query outside the contract's shape with `INVALID_QUERY`: an `and` or `or`
 * without members, an `and` with nothing but exclusions, a `not` outside an `and`. The query
 * language never makes one; a driver checks anyway, since no engine can run them.
 */
export function assertQueryShape(query: SearchQuery, inAnd = false): void {
  switch (query.op) {
    case "term":
    case "phrase":
      if (typeof query.text !== "string")
        throw new KvError("INVALID_QUERY", "a search term's text is a string");
      return;
    case "not":
      if (!inAnd)
        throw new KvError("INVALID_QUERY", "an exclusion needs something to exclude from");
      assertQueryShape(query.query);
      return;
    case "and":
    case "or":
      if (!Array.isArray(query.queries) || query.queries.length === 0)
        throw new KvError("INVALID_QUERY", `a search ${query.op.toUpperCase()} has no members`);
      if (query.op === "and" && query.queries.every((q) => q.op === "not"))
        throw new KvError(
          "INVALID_QUERY",
          "a search query needs something to look for besides exclusions",
        );
      for (const member of query.queries) assertQueryShape(member, query.op === "and");
      return;
    default:
      throw new KvError("INVALID_QUERY", "unknown search query operator");
  }
}

/** The leaves of a query that are looked for (not under a `not`): what highlights mark. */
export function positiveLeaves(query: SearchQuery): (SearchQuery & { op: "term" | "phrase" })[] {
  switch (query.op) {
    case "term":
    case "phrase":
      return [query];
    case "not":
      return [];
    default:
      return query.queries.flatMap(positiveLeaves);
  }
}

/** Words around the first match a snippet shows, as FTS5's `snippet(…, 16)` does. */
const SNIPPET_WORDS = 16;
const ELLIPSIS = "…";

/**
 * A snippet of `text` around its first match, with every span of `spans` inside it wrapped in
 * the markers; null when `spans` is empty. Overlapping spans are merged.
 */
export function snippet(
  text: string,
  spans: readonly { start: number; end: number }[],
  markers: { readonly start: string; readonly end: string },
): string | null {
  if (spans.length === 0) return null;
  const merged = mergeSpans(spans);
  const all = words(text);
  const first = merged[0]!.start;
  let from = all.findIndex((w) => w.end > first);
  if (from < 0) from = all.length;
  // A little context before the match, as FTS5 centres its snippets.
  from = Math.max(0, Math.min(from - 2, all.length - SNIPPET_WORDS));
  const to = Math.min(all.length, from + SNIPPET_WORDS);
  const start = from === 0 ? 0 : Math.min(all[from]!.start, first);
  const end = to === all.length ? text.length : Math.max(all[to - 1]!.end, merged[0]!.end);
  let out = from === 0 ? "" : ELLIPSIS;
  let at = start;
  for (const span of merged) {
    if (span.end <= start || span.start >= end) continue;
    const s = Math.max(span.start, start);
    const e = Math.min(span.end, end);
    out += `${text.slice(at, s)}${markers.start}${text.slice(s, e)}${markers.end}`;
    at = e;
  }
  out += text.slice(at, end);
  return to === all.length ? out : out + ELLIPSIS;
}

function mergeSpans(spans: readonly { start: number; end: number }[]) {
  const sorted = [...spans].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: { start: number; end: number }[] = [];
  for (const span of sorted) {
    const last = out.at(-1);
    if (last && span.start <= last.end) last.end = Math.max(last.end, span.end);
    else out.push({ start: span.start, end: span.end });
  }
  return out;
}

/** A UTF-16 span of a text. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/**
 * Where the leaves of a query match in `text`, for highlights. Word indexes: the words (or runs
 * of adjacent words, for phrases and terms of several words) equal to the leaf's, through
 * `stem` (a prefix leaf's last word only has to start the text's). Trigram indexes: every
 * trigram a term shares with the text (a term is looked up by any of its trigrams), and every
 * occurrence of a phrase.
 */
export function matchSpans(
  text: string,
  leaves: readonly (SearchQuery & { op: "term" | "phrase" })[],
  tokenizer: SearchTokenizer,
  stem: (word: string) => string = (word) => word,
): Span[] {
  if (tokenizer === "trigram") return trigramSpans(text, leaves);
  const tokens = words(text).map((w) => ({ ...w, word: stem(w.word) }));
  const spans: Span[] = [];
  for (const leaf of leaves) {
    const wanted = words(leaf.text).map((w) => stem(w.word));
    const prefix = leaf.op === "term" && leaf.prefix === true;
    for (const at of sequenceAt(
      tokens.map((t) => t.word),
      wanted,
      prefix,
    )) {
      spans.push({ start: tokens[at]!.start, end: tokens[at + wanted.length - 1]!.end });
    }
  }
  return spans;
}

/**
 * The positions in `tokens` where `wanted` occurs, adjacent and in order (with `prefix`, its
 * last token need only start the token there).
 */
export function sequenceAt(
  tokens: readonly string[],
  wanted: readonly string[],
  prefix: boolean,
): number[] {
  const out: number[] = [];
  if (wanted.length === 0) return out;
  const last = wanted.length - 1;
  for (let i = 0; i + wanted.length <= tokens.length; i++) {
    let j = 0;
    while (j < last && tokens[i + j] === wanted[j]) j++;
    if (j < last) continue;
    const token = tokens[i + last]!;
    if (prefix ? token.startsWith(wanted[last]!) : token === wanted[last]) out.push(i);
  }
  return out;
}

function trigramSpans(text: string, leaves: readonly (SearchQuery & { op: string })[]): Span[] {
  const grams = trigrams(text);
  const spans: Span[] = [];
  for (const leaf of leaves) {
    if (leaf.op !== "term" && leaf.op !== "phrase") continue;
    if (leaf.op === "term") {
      const wanted = new Set(trigrams(leaf.text).map((t) => t.word));
      for (const gram of grams) if (wanted.has(gram.word)) spans.push(gram);
      continue;
    }
    for (const at of substringAt(grams, fold(leaf.text))) spans.push(at);
  }
  return spans;
}

/** The spans where `needle` (folded, 3 code points or more) occurs in the text of `grams`. */
function substringAt(grams: readonly Word[], needle: string): Span[] {
  const wanted = trigrams(needle).map((t) => t.word);
  if (wanted.length === 0) return [];
  const at = sequenceAt(
    grams.map((g) => g.word),
    // Trigrams overlap: a substring is its trigrams at consecutive positions.
    wanted,
    false,
  );
  return at.map((i) => ({ start: grams[i]!.start, end: grams[i + wanted.length - 1]!.end }));
}

/** Whether `needle` occurs in `text`, both folded: a phrase or exclusion of a trigram index. */
export function containsFolded(text: string, needle: string): boolean {
  return fold(text).includes(fold(needle));
}
