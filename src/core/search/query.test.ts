import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { SearchQuery } from "../../contract/search.js";
import { KvError } from "../../errors.js";
import {
  assertHighlightMarkers,
  formatSearchQuery,
  MAX_QUERY_LENGTH,
  MAX_QUERY_TERMS,
  parseSearchQuery,
  searchQueryDoc,
} from "./query.js";

const term = (text: string, prefix = false): SearchQuery =>
  prefix ? { op: "term", text, prefix: true } : { op: "term", text };
const phrase = (text: string): SearchQuery => ({ op: "phrase", text });
const and = (...queries: SearchQuery[]): SearchQuery => ({ op: "and", queries });
const or = (...queries: SearchQuery[]): SearchQuery => ({ op: "or", queries });
const not = (query: SearchQuery): SearchQuery => ({ op: "not", query });

describe("parseSearchQuery", () => {
  it.each([
    ["cellar", term("cellar")],
    ["cellar sqlite", and(term("cellar"), term("sqlite"))],
    ['"key value"', phrase("key value")],
    ["data*", term("data", true)],
    ["kv -draft", and(term("kv"), not(term("draft")))],
    ['kv -"to do"', and(term("kv"), not(phrase("to do")))],
    ["a OR b", or(term("a"), term("b"))],
    ["a OR b OR c", or(term("a"), term("b"), term("c"))],
    ["a b OR c", and(term("a"), or(term("b"), term("c")))],
    ["a b OR c d", and(term("a"), or(term("b"), term("c")), term("d"))],
    ['"a b" OR c*', or(phrase("a b"), term("c", true))],
    ["(a OR b) c", and(or(term("a"), term("b")), term("c"))],
    ["a (b c) OR d", and(term("a"), or(and(term("b"), term("c")), term("d")))],
    ["a (b c)", and(term("a"), term("b"), term("c"))],
    ["-(a b) c", and(not(and(term("a"), term("b"))), term("c"))],
    ["(a -b) OR c", or(and(term("a"), not(term("b"))), term("c"))],
    ["(((a)))", term("a")],
  ])("reads %j", (text, expected) => {
    expect(parseSearchQuery(text)).toEqual(expected);
  });

  it.each([
    ['"unclosed phrase', phrase("unclosed phrase")],
    ["(a OR b", or(term("a"), term("b"))],
    ["a) b", and(term("a"), term("b"))],
    ["hello, world!", and(term("hello"), term("world"))],
    ["(hello)", term("hello")],
    ["e-mail", term("e-mail")],
    ["node.js", term("node.js")],
    ["café*,", term("café", true)],
    ["OR a OR", term("a")],
    ["a OR OR b", or(term("a"), term("b"))],
    ["a or b", and(term("a"), term("or"), term("b"))],
    ["-a OR b", and(not(term("a")), term("b"))],
    ["a OR -b", and(term("a"), not(term("b")))],
    ["(-a) b", and(not(term("a")), term("b"))],
    ["-(-a) b", term("b")],
    ["-OR x", and(not(term("OR")), term("x"))],
    ["- a", term("a")],
    ["a-", term("a")],
    ["--a b", and(not(term("a")), term("b"))],
    ['"" a', term("a")],
    ["\u0000a\u0007b", and(term("a"), term("b"))],
    ["🎉 party", term("party")],
    ["NEAR(a b)", and(term("NEAR"), term("a"), term("b"))],
    ["col:x", term("col:x")],
    ["') OR 1=1 --", term("1=1")],
    ["AND OR NOT", or(term("AND"), term("NOT"))],
  ])("is lenient with %j", (text, expected) => {
    expect(parseSearchQuery(text)).toEqual(expected);
  });

  it.each([
    ["", "has no words"],
    ["   \t\n", "has no words"],
    ["!!! ... ---", "has no words"],
    ['"" ()', "has no words"],
    ["🎉", "has no words"],
    ["-draft", "only excludes"],
    ['-a -"b c" -(d e)', "only excludes"],
    ["(-a)", "only excludes"],
  ])("refuses %j, which has nothing to look for", (text, reason) => {
    expect(() => parseSearchQuery(text)).toThrow(
      expect.objectContaining({ code: "INVALID_QUERY", message: expect.stringContaining(reason) }),
    );
  });

  it("limits a query to 1,000 characters and 64 terms", () => {
    expect(() => parseSearchQuery("a".repeat(MAX_QUERY_LENGTH))).not.toThrow();
    // Counted in characters, not UTF-16 units.
    expect(() => parseSearchQuery("é".repeat(MAX_QUERY_LENGTH))).not.toThrow();
    expect(() => parseSearchQuery("😀a".repeat(MAX_QUERY_LENGTH / 2))).not.toThrow();
    expect(() => parseSearchQuery("a".repeat(MAX_QUERY_LENGTH + 1))).toThrow(
      expect.objectContaining({ code: "INVALID_QUERY", message: expect.stringContaining("1000") }),
    );
    const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");
    expect(() => parseSearchQuery(words(MAX_QUERY_TERMS))).not.toThrow();
    expect(() => parseSearchQuery(`${words(MAX_QUERY_TERMS)} -x`)).toThrow(
      expect.objectContaining({ code: "INVALID_QUERY", message: expect.stringContaining("65") }),
    );
  });

  it("never throws anything but INVALID_QUERY, and never returns an empty term or phrase", () => {
    const alphabet = fc.constantFrom(
      ..."ab é-*\"()OR\u0000\t\\:^'🎉NEAR".split(""),
      "OR",
      " OR ",
      "\ud800",
    );
    const text = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 80 }),
      fc.string({ unit: alphabet, maxLength: 60 }),
      fc.string({ unit: "binary", maxLength: 40 }),
    );
    fc.assert(
      fc.property(text, (input) => {
        let query: SearchQuery;
        try {
          query = parseSearchQuery(input);
        } catch (error) {
          expect(error).toBeInstanceOf(KvError);
          expect((error as KvError).code).toBe("INVALID_QUERY");
          return;
        }
        assertWellFormed(query, false);
        // Formatting gives text that reads back as the same query.
        expect(parseSearchQuery(formatSearchQuery(query))).toEqual(query);
      }),
      { numRuns: 2000 },
    );
  });
});

/** The contract's shape: leaves hold something to look for, and every AND something positive. */
function assertWellFormed(query: SearchQuery, inAnd: boolean): void {
  switch (query.op) {
    case "term":
    case "phrase":
      expect(query.text.trim()).not.toBe("");
      expect(query.text).toMatch(/[\p{L}\p{N}]/u);
      return;
    case "not":
      expect(inAnd).toBe(true);
      assertWellFormed(query.query, false);
      return;
    case "and":
      expect(query.queries.length).toBeGreaterThan(1);
      expect(query.queries.some((q) => q.op !== "not")).toBe(true);
      for (const q of query.queries) assertWellFormed(q, true);
      return;
    case "or":
      expect(query.queries.length).toBeGreaterThan(1);
      for (const q of query.queries) assertWellFormed(q, false);
  }
}

describe("assertHighlightMarkers", () => {
  it('takes 1 to 32 characters without , " = or control characters', () => {
    expect(() => assertHighlightMarkers({ start: "<mark>", end: "</mark>" })).not.toThrow();
    expect(() => assertHighlightMarkers({ start: "[", end: "]" })).not.toThrow();
    expect(() => assertHighlightMarkers({ start: "«".repeat(32), end: "»" })).not.toThrow();
    for (const bad of ["", "x".repeat(33), "a,b", 'a"b', "a=b", "a\u0000", 7]) {
      expect(() => assertHighlightMarkers({ start: bad, end: "]" })).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
      expect(() => assertHighlightMarkers({ start: "[", end: bad })).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT" }),
      );
    }
  });
});

it("documents the language", () => {
  const doc = searchQueryDoc();
  for (const syntax of ['"key value"', "data*", "-draft", "OR", "Parentheses"])
    expect(doc).toContain(syntax);
});
