/**
 * The search query language: what users type into `kv.search`, parsed into the driver
 * contract's {@link SearchQuery}.
 *
 * | you type | finds documents… |
 * |---|---|
 * | `cellar sqlite` | with every word (words are joined by an implicit AND) |
 * | `"key value"` | with these words adjacent and in this order (a phrase) |
 * | `data*` | with a word starting with `data` |
 * | `-draft`, `-"to do"` | without this word or phrase (an exclusion) |
 * | `sqlite OR postgres` | with either; `OR` (upper case) binds tighter than the implicit AND, so `kv sqlite OR postgres` is `kv AND (sqlite OR postgres)` |
 * | `kv (sqlite OR postgres) -draft` | parentheses group, and may be excluded: `-(a b)` |
 *
 * The parser is lenient, as web search boxes are: an unclosed quote or parenthesis closes at the
 * end, a stray `)` is ignored, and so is punctuation around words (`hello,` is `hello`; `e-mail`
 * stays one term, which the index's tokenizer splits). An exclusion cannot be an alternative: in
 * `-a OR b` the `OR` is ignored. A query with nothing to look for (empty, only punctuation, or
 * only exclusions) is `INVALID_QUERY`, as is one over {@link MAX_QUERY_LENGTH} characters or
 * {@link MAX_QUERY_TERMS} terms.
 */
import type { SearchQuery } from "../../contract/search.js";
import { KvError } from "../../errors.js";

/** Longest query, in characters (code points). */
export const MAX_QUERY_LENGTH = 1000;
/** Most terms and phrases in one query, exclusions included. */
export const MAX_QUERY_TERMS = 64;

/**
 * The language's documentation, as Markdown: for API docs and error pages.
 *
 * @example
 * console.log(searchQueryDoc());
 */
export function searchQueryDoc(): string {
  return [
    "Words are joined by an implicit AND: `cellar sqlite` finds documents with both.",
    '`"key value"` finds the words adjacent and in order.',
    "`data*` finds words starting with `data`.",
    '`-draft` and `-"to do"` exclude documents with the word or phrase.',
    "`sqlite OR postgres` finds either; OR binds tighter than AND: `kv sqlite OR postgres` is kv AND (sqlite OR postgres).",
    "Parentheses group: `kv (sqlite OR postgres)`, `-(draft old)`.",
    `Unclosed quotes and parentheses close at the end; punctuation around words is ignored. At most ${MAX_QUERY_LENGTH} characters and ${MAX_QUERY_TERMS} terms; a query needs something to look for besides exclusions.`,
  ]
    .map((line) => `- ${line}`)
    .join("\n");
}

/**
 * Parses a query of the search language (see the top of this file).
 *
 * @throws KvError `INVALID_QUERY` when the query has nothing to look for or is too long.
 * @example
 * parseSearchQuery('kv "key value" -draft');
 * // { op: "and", queries: [term kv, phrase "key value", { op: "not", query: term draft }] }
 */
export function parseSearchQuery(text: string): SearchQuery {
  if (typeof text !== "string") invalid(`a search query is a string, got ${typeof text}`);
  if (text.length > MAX_QUERY_LENGTH && countCodePoints(text) > MAX_QUERY_LENGTH)
    invalid(`a search query has at most ${MAX_QUERY_LENGTH} characters`);
  const parser = new Parser(lex(text));
  const query = parser.parseTop();
  const terms = countTerms(query);
  if (terms > MAX_QUERY_TERMS)
    invalid(`a search query has at most ${MAX_QUERY_TERMS} terms, this one has ${terms}`);
  return query;
}

/**
 * Checks the strings that wrap matched terms in highlights: 1–32 characters each, and none of
 * `,` `"` `=` or control characters (PostgreSQL's `ts_headline` options cannot carry them).
 *
 * @throws KvError `INVALID_ARGUMENT`
 * @example
 * assertHighlightMarkers({ start: "<mark>", end: "</mark>" });
 */
export function assertHighlightMarkers(markers: { start: unknown; end: unknown }): void {
  for (const [name, marker] of Object.entries({ start: markers.start, end: markers.end })) {
    if (typeof marker !== "string" || marker.length < 1 || countCodePoints(marker) > 32) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `the highlight ${name} marker is a string of 1 to 32 characters`,
      );
    }
    if (/[,"=\p{Cc}]/u.test(marker)) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `the highlight ${name} marker ${JSON.stringify(marker)} holds one of , " = or a control character`,
      );
    }
  }
}

/**
 * Writes a parsed query back in the language, so that parsing the result gives the same query
 * (for logs, and to show users how their query was read).
 *
 * @example
 * formatSearchQuery(parseSearchQuery("a b OR c")); // 'a (b OR c)'
 */
export function formatSearchQuery(query: SearchQuery): string {
  switch (query.op) {
    case "term":
      return `${query.text}${query.prefix ? "*" : ""}`;
    case "phrase":
      return `"${query.text.replaceAll('"', " ")}"`;
    case "not":
      return `-${grouped(query.query)}`;
    case "or":
      return query.queries.map(grouped).join(" OR ");
    case "and":
      return query.queries.map(grouped).join(" ");
  }
}

const grouped = (query: SearchQuery): string =>
  query.op === "and" || query.op === "or"
    ? `(${formatSearchQuery(query)})`
    : formatSearchQuery(query);

function invalid(message: string): never {
  throw new KvError("INVALID_QUERY", message);
}

function countCodePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function countTerms(query: SearchQuery): number {
  switch (query.op) {
    case "term":
    case "phrase":
      return 1;
    case "not":
      return countTerms(query.query);
    default:
      return query.queries.reduce((sum, q) => sum + countTerms(q), 0);
  }
}

type Token =
  | { readonly kind: "open" | "close" | "or" }
  | { readonly kind: "minus" }
  | { readonly kind: "term"; readonly text: string; readonly prefix: boolean }
  | { readonly kind: "phrase"; readonly text: string };

/** Separates tokens: white space, control characters and lone surrogates. */
const SEPARATOR = /[\s\p{Cc}\p{Cs}]/u;
/** What a term or phrase must hold to be looked for. */
const CONTENT = /[\p{L}\p{N}]/u;
const LEADING_NOISE = /^[^\p{L}\p{N}]+/u;
const TRAILING_NOISE = /[^\p{L}\p{N}\p{M}]+$/u;

/** Splits the query into tokens; words and phrases with nothing to look for are dropped. */
function lex(text: string): Token[] {
  const tokens: Token[] = [];
  const chars = [...text];
  let i = 0;
  // A `-` excludes only what starts right after it, at the start of a token.
  let minus = false;
  const push = (token: Token | null) => {
    if (minus && token) tokens.push({ kind: "minus" });
    if (token) tokens.push(token);
    minus = false;
  };
  while (i < chars.length) {
    const c = chars[i]!;
    if (SEPARATOR.test(c)) {
      minus = false;
      i++;
    } else if (c === "(") {
      push({ kind: "open" });
      i++;
    } else if (c === ")") {
      minus = false;
      tokens.push({ kind: "close" });
      i++;
    } else if (c === '"') {
      const close = chars.indexOf('"', i + 1);
      const end = close === -1 ? chars.length : close;
      const body = chars
        .slice(i + 1, end)
        .join("")
        .replace(/[\p{Cc}\p{Cs}]/gu, " ")
        .trim();
      push(CONTENT.test(body) ? { kind: "phrase", text: body } : null);
      i = end + 1;
    } else if (c === "-" && !minus) {
      minus = true;
      i++;
    } else {
      let end = i;
      while (end < chars.length && !SEPARATOR.test(chars[end]!) && !'"()'.includes(chars[end]!))
        end++;
      push(word(chars.slice(i, end).join(""), minus));
      i = end;
    }
  }
  return tokens;
}

/**
 * A word as typed, without the punctuation at its edges: `OR` (unless excluded: the word "or"),
 * a term (a prefix when a `*` follows its last letter), or null when it is only punctuation.
 */
function word(raw: string, excluded: boolean): Token | null {
  const body = raw.replace(LEADING_NOISE, "");
  const tail = TRAILING_NOISE.exec(body)?.[0] ?? "";
  const text = body.slice(0, body.length - tail.length);
  if (!CONTENT.test(text)) return null;
  if (text === "OR" && !excluded) return { kind: "or" };
  return { kind: "term", text, prefix: tail.startsWith("*") };
}

/** A member of an implicit AND: a query, possibly excluded. */
interface Item {
  readonly query: SearchQuery;
  readonly excluded: boolean;
}

class Parser {
  #at = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  parseTop(): SearchQuery {
    const items = this.#sequence(0);
    const positive = items.filter((item) => !item.excluded);
    if (positive.length === 0) {
      invalid(
        items.length > 0
          ? "a search query needs something to look for: this one only excludes"
          : "a search query needs something to look for: this one has no words",
      );
    }
    return conjunction(items)!;
  }

  /** Items up to the end, or up to the `)` closing a group at `depth` > 0. */
  #sequence(depth: number): Item[] {
    const items: Item[] = [];
    let or = false;
    while (this.#at < this.tokens.length) {
      const token = this.tokens[this.#at++]!;
      if (token.kind === "close") {
        if (depth > 0) break;
        continue;
      }
      if (token.kind === "or") {
        or = items.length > 0;
        continue;
      }
      const excluded = token.kind === "minus";
      const operand = excluded ? this.tokens[this.#at++] : token;
      const found = operand === undefined ? [] : this.#operand(operand, depth);
      for (const member of found) {
        // Excluding an exclusion (`-(-a)`) asks for nothing: it is dropped.
        if (excluded && member.excluded) continue;
        const item = excluded ? { query: member.query, excluded } : member;
        const last = items.at(-1);
        if (or && last && !last.excluded && !item.excluded) {
          items[items.length - 1] = { query: either(last.query, item.query), excluded: false };
        } else {
          items.push(item);
        }
        or = false;
      }
    }
    return items;
  }

  /** The items one operand stands for: a term, a phrase, or a group's. */
  #operand(token: Token, depth: number): Item[] {
    if (token.kind === "term") {
      return [
        {
          query: { op: "term", text: token.text, ...(token.prefix && { prefix: true as const }) },
          excluded: false,
        },
      ];
    }
    if (token.kind === "phrase")
      return [{ query: { op: "phrase", text: token.text }, excluded: false }];
    if (token.kind !== "open") return [];
    const inner = this.#sequence(depth + 1);
    // A group that only excludes adds its exclusions to the enclosing AND.
    if (inner.every((item) => item.excluded)) return inner;
    return [{ query: conjunction(inner)!, excluded: false }];
  }
}

/** The AND of items (at least one not excluded), flattening nested ANDs; null when empty. */
function conjunction(items: readonly Item[]): SearchQuery | null {
  const queries: SearchQuery[] = [];
  for (const { query, excluded } of items) {
    if (excluded) queries.push({ op: "not", query });
    else if (query.op === "and") queries.push(...query.queries);
    else queries.push(query);
  }
  if (queries.length === 0) return null;
  return queries.length === 1 ? queries[0]! : { op: "and", queries };
}

function either(a: SearchQuery, b: SearchQuery): SearchQuery {
  const members = (q: SearchQuery) => (q.op === "or" ? q.queries : [q]);
  return { op: "or", queries: [...members(a), ...members(b)] };
}
