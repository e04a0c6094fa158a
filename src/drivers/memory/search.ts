/**
 * Full-text search in memory: one MiniSearch per index, its documents keyed by entry key ids.
 *
 * MiniSearch finds and scores single terms (BM25+, its own parameters); the query's structure is
 * evaluated here over those results, so phrases, exclusions and trigram matching mean what they
 * mean on SQLite: a phrase is its words adjacent in one field, a term of several words (`e-mail`)
 * is such a phrase, a trigram term matches any of its trigrams and an excluded one only as a
 * substring. A hit's score is the sum of its matched terms' scores.
 *
 * Tokenizers: `word` folds case and diacritics and splits on what is not a letter or digit;
 * `stemmed` also stems with Porter's algorithm (the `stemmer` package: the algorithm SQLite's
 * `porter` tokenizer runs); `trigram` indexes every three folded characters.
 */
import MiniSearch from "minisearch";
import { stemmer } from "stemmer";
import type {
  RawEntry,
  SearchDoc,
  SearchHit,
  SearchIndexSpec,
  SearchQuery,
  SearchRequest,
} from "../../contract/index.js";
import {
  alreadyExists,
  assertDocFields,
  assertQueryShape,
  assertSearchSpec,
  containsFolded,
  matchSpans,
  positiveLeaves,
  queryTrigrams,
  sameSpec,
  searchableText,
  sequenceAt,
  snippet,
  trigrams,
  unknownIndex,
  words,
} from "../shared/search-text.js";

/** Scores of the documents a query matched, by key id. */
type Scores = Map<string, number>;

interface Doc {
  readonly id: string;
  readonly fields: readonly string[];
}

const identity = (term: string) => term;

const ANALYZERS = {
  word: (text: string) => words(text).map((w) => w.word),
  stemmed: (text: string) => words(text).map((w) => stemmer(w.word)),
  trigram: (text: string) => trigrams(text).map((t) => t.word),
};

class MemoryIndex {
  readonly spec: SearchIndexSpec;
  readonly docs = new Map<string, readonly string[]>();
  readonly #engine: MiniSearch<Doc>;
  readonly #analyze: (text: string) => string[];

  constructor(spec: SearchIndexSpec) {
    this.spec = spec;
    this.#analyze = ANALYZERS[spec.tokenizer];
    this.#engine = new MiniSearch<Doc>({
      fields: Array.from({ length: spec.fields }, (_, i) => `c${i}`),
      extractField: (doc, name) => (name === "id" ? doc.id : doc.fields[Number(name.slice(1))]),
      tokenize: this.#analyze,
      processTerm: identity,
      autoVacuum: false,
      // Queries reach MiniSearch as terms this index already analyzed.
      searchOptions: { tokenize: (term) => [term], processTerm: identity },
    });
  }

  set(id: string, fields: readonly string[] | null): void {
    const old = this.docs.get(id);
    if (old) this.#engine.remove({ id, fields: old });
    if (fields === null) {
      this.docs.delete(id);
      return;
    }
    this.docs.set(id, fields);
    this.#engine.add({ id, fields });
  }

  /**
   * The documents `query` matches, with their scores; `excluded` (under an exclusion) looks
   * trigram terms up as they are.
   */
  evaluate(query: SearchQuery, excluded = false): Scores {
    switch (query.op) {
      case "term":
      case "phrase":
        return this.spec.tokenizer === "trigram"
          ? this.#trigram(query, excluded)
          : this.#words(query);
      case "not":
        return new Map();
      case "or": {
        const out: Scores = new Map();
        for (const member of query.queries) {
          for (const [id, score] of this.evaluate(member, excluded))
            out.set(id, (out.get(id) ?? 0) + score);
        }
        return out;
      }
      case "and": {
        let out: Scores | null = null;
        for (const member of query.queries) {
          if (member.op === "not") continue;
          const scores = this.evaluate(member, excluded);
          out = out === null ? scores : intersect(out, scores);
          if (out.size === 0) return out;
        }
        for (const member of query.queries)
          if (member.op === "not")
            for (const id of this.evaluate(member.query, true).keys()) out!.delete(id);
        return out ?? new Map();
      }
    }
  }

  /** A term or phrase of a word index: one word, or several adjacent in one field. */
  #words(leaf: SearchQuery & { op: "term" | "phrase" }): Scores {
    const tokens = this.#analyze(leaf.text);
    const prefix = leaf.op === "term" && leaf.prefix === true;
    if (tokens.length === 0) return new Map();
    const scores = tokens
      .map((token, i) => this.#lookup(token, prefix && i === tokens.length - 1))
      .reduce(intersect);
    if (tokens.length === 1) return scores;
    for (const id of scores.keys()) {
      const fields = this.docs.get(id)!;
      if (!fields.some((field) => sequenceAt(this.#analyze(field), tokens, prefix).length > 0))
        scores.delete(id);
    }
    return scores;
  }

  /**
   * A term or phrase of a trigram index: a term looked for matches any of its trigrams (so
   * substrings and words with a typo match, ranked by how many trigrams they share); a phrase,
   * or an excluded term, only where it occurs as it is.
   */
  #trigram(leaf: SearchQuery & { op: "term" | "phrase" }, excluded: boolean): Scores {
    const grams = queryTrigrams(leaf.text);
    if (leaf.op === "term" && !excluded) {
      return scoresOf(this.#engine.search({ combineWith: "OR", queries: grams }));
    }
    const scores = scoresOf(this.#engine.search({ combineWith: "AND", queries: grams }));
    for (const id of scores.keys()) {
      if (!this.docs.get(id)!.some((field) => containsFolded(field, leaf.text))) scores.delete(id);
    }
    return scores;
  }

  #lookup(term: string, prefix: boolean): Scores {
    return scoresOf(this.#engine.search(term, { prefix, combineWith: "OR" }));
  }

  highlights(id: string, query: SearchQuery, markers: { start: string; end: string }) {
    const leaves = positiveLeaves(query);
    const stem = this.spec.tokenizer === "stemmed" ? stemmer : undefined;
    return this.docs
      .get(id)!
      .map((field) =>
        snippet(field, matchSpans(field, leaves, this.spec.tokenizer, stem), markers),
      );
  }
}

function scoresOf(results: readonly { id: string; score: number }[]): Scores {
  return new Map(results.map((r) => [r.id, r.score]));
}

/** The documents in both, with summed scores. */
function intersect(a: Scores, b: Scores): Scores {
  const out: Scores = new Map();
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  for (const [id, score] of small) {
    const other = large.get(id);
    if (other !== undefined) out.set(id, score + other);
  }
  return out;
}

/** The memory driver's search indexes. Documents are keyed by entry key ids (see `keyId`). */
export class MemorySearch {
  readonly #indexes = new Map<number, MemoryIndex>();

  create(spec: SearchIndexSpec): void {
    assertSearchSpec(spec);
    const existing = this.#indexes.get(spec.id);
    if (existing && !sameSpec(existing.spec, spec)) throw alreadyExists(spec);
    if (!existing) this.#indexes.set(spec.id, new MemoryIndex(spec));
  }

  drop(id: number): void {
    this.#indexes.delete(id);
  }

  /** Refuses documents that cannot be applied, before their write changes anything. */
  check(docs: readonly SearchDoc[]): void {
    for (const doc of docs) {
      const index = this.#indexes.get(doc.index);
      if (index && doc.fields) assertDocFields(index.spec, doc.fields);
    }
  }

  /**
   * Applies checked documents. Those of an index that does not exist (dropped while the write
   * was on its way) are ignored.
   */
  apply(docs: readonly SearchDoc[], idOf: (key: Uint8Array) => string): void {
    for (const doc of docs) {
      const fields = doc.fields?.map(searchableText) ?? null;
      this.#indexes.get(doc.index)?.set(idOf(doc.key), fields);
    }
  }

  /** Removes the documents of these keys from every index. */
  forget(ids: Iterable<string>): void {
    if (this.#indexes.size === 0) return;
    for (const id of ids) for (const index of this.#indexes.values()) index.set(id, null);
  }

  /** Removes the documents of every key starting with `prefix` from every index. */
  forgetPrefix(prefix: string): void {
    for (const index of this.#indexes.values())
      for (const id of [...index.docs.keys()]) if (id.startsWith(prefix)) index.set(id, null);
  }

  /**
   * Runs a search: `entryOf` answers a document's live entry that matches the request's
   * filter, or null.
   */
  search(
    request: SearchRequest,
    range: { start: string; end: string },
    entryOf: (id: string) => RawEntry | null,
  ): SearchHit[] {
    const index = this.#indexes.get(request.index);
    if (!index) throw unknownIndex(request.index);
    assertQueryShape(request.query);
    const hits: { id: string; score: number; entry: RawEntry }[] = [];
    for (const [id, score] of index.evaluate(request.query)) {
      if (id < range.start || id >= range.end) continue;
      const entry = entryOf(id);
      if (entry) hits.push({ id, score, entry });
    }
    hits.sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const { highlight } = request;
    return hits
      .slice(request.offset, request.offset + request.limit)
      .map(({ id, score, entry }) =>
        highlight
          ? { entry, score, highlights: index.highlights(id, request.query, highlight) }
          : { entry, score },
      );
  }
}
