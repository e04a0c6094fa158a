/**
 * The indexes group's data: 100,000 user documents under `["users", id]`, the same on every
 * store, generated from fixed seeds so that every run holds the same values and asks the same
 * questions.
 */
import Database from "better-sqlite3";
import MiniSearch from "minisearch";
import type { Kv } from "../src/index.js";
import type { Key } from "./workload.js";

export const DOCUMENTS = 100_000;
/** Distinct `city` values: about 100 documents each. */
export const CITIES = 1000;
/** `score` is an integer below this; a range query spans {@link SCORE_SPAN} of it. */
const SCORES = 100_000;
const SCORE_SPAN = 200;
export const RANGE_LIMIT = 100;
export const SEARCH_LIMIT = 20;
export const PREFIX: ["users"] = ["users"];

/**
 * A user: the fields of the where-filter cases (`group`, `email`, `age`, `tags`), a city of
 * {@link CITIES}, a score, and a few sentences of text to search.
 */
export interface Doc {
  id: number;
  name: string;
  email: string;
  group: number;
  age: number;
  active: boolean;
  tags: string[];
  city: string;
  score: number;
  bio: string;
}

/** mulberry32: a small, fast PRNG, good enough to spread values and reproducible by seed. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (next: () => number, below: number) => Math.floor(next() * below);

/** 2,000 made-up words of two or three syllables, most frequent first. */
function vocabulary(next: () => number): string[] {
  const consonants = "bdfgklmnprstvz";
  const vowels = "aeiou";
  const syllable = () => consonants[int(next, consonants.length)]! + vowels[int(next, 5)]!;
  const words = new Set<string>();
  while (words.size < 2000) {
    words.add(Array.from({ length: 2 + int(next, 2) }, syllable).join(""));
  }
  return [...words];
}

const WORDS = vocabulary(random(1));

/** Word frequencies follow Zipf's law, as in natural text: rank r drawn ∝ 1/r. */
const CUMULATIVE = (() => {
  const weights = WORDS.map((_, r) => 1 / (r + 1));
  const total = weights.reduce((a, b) => a + b, 0);
  let sum = 0;
  return weights.map((w) => (sum += w / total));
})();

function word(next: () => number): string {
  const x = next();
  let lo = 0;
  let hi = CUMULATIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (CUMULATIVE[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return WORDS[lo]!;
}

/** Two or three sentences of 6 to 11 words. */
function text(next: () => number): string {
  const sentences: string[] = [];
  for (let s = 2 + int(next, 2); s > 0; s--) {
    const words = Array.from({ length: 6 + int(next, 6) }, () => word(next));
    const first = words[0]!;
    words[0] = first[0]!.toUpperCase() + first.slice(1);
    sentences.push(`${words.join(" ")}.`);
  }
  return sentences.join(" ");
}

const city = (n: number) => `city-${String(n).padStart(3, "0")}`;

function documents(seed: number): Doc[] {
  const next = random(seed);
  return Array.from({ length: DOCUMENTS }, (_, i) => ({
    id: i,
    name: `user-${i}`,
    email: `user-${i}@example.com`,
    group: i % 10,
    age: 18 + (i % 60),
    active: i % 2 === 0,
    tags: [`t${i % 7}`, `t${i % 11}`],
    city: city(int(next, CITIES)),
    score: int(next, SCORES),
    bio: text(next),
  }));
}

/** The documents every store is loaded with. */
export const DOCS: readonly Doc[] = documents(2);
export const KEYS: readonly Key[] = DOCS.map((doc): Key => ["users", doc.id]);

/**
 * The version a write stores in place of the loaded one (and back): another city, score and
 * text, so that a write changes what the indexes hold. Made for the first `count` documents.
 */
export function updates(count: number): Doc[] {
  const other = documents(3);
  return DOCS.slice(0, count).map((doc, i) => ({
    ...doc,
    city: other[i]!.city,
    score: other[i]!.score,
    bio: other[i]!.bio,
  }));
}

/** The city asked for by query `i`. */
export const cityOf = (i: number) => city(i % CITIES);

/** The score range `[from, to)` of query `i`. */
export function scoreRange(i: number): [number, number] {
  const from = ((i * 7919) % (SCORES / SCORE_SPAN)) * SCORE_SPAN;
  return [from, from + SCORE_SPAN];
}

/** Two-word queries of words of frequency ranks 20 to 100: tens to a thousand matches each. */
export const QUERIES: readonly string[] = (() => {
  const next = random(4);
  return Array.from({ length: 256 }, () => {
    const a = WORDS[20 + int(next, 80)]!;
    let b = a;
    while (b === a) b = WORDS[20 + int(next, 80)]!;
    return `${a} ${b}`;
  });
})();

/** Loads every document, a thousand to a commit. */
export async function load(kv: Kv): Promise<void> {
  for (let start = 0; start < DOCUMENTS; start += 1000) {
    const atomic = kv.atomic();
    for (let i = start; i < Math.min(start + 1000, DOCUMENTS); i++) atomic.set(KEYS[i]!, DOCS[i]!);
    await atomic.commit();
  }
}

/** Entries whose `city` is `city`, read to the end. */
export async function listByCity(kv: Kv, city: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const entry of kv.list({ prefix: PREFIX }, { where: { city } })) out.push(entry);
  return out;
}

/** The first {@link RANGE_LIMIT} entries, in key order, whose score is in `[from, to)`. */
export async function listByScore(kv: Kv, [from, to]: [number, number]): Promise<unknown[]> {
  const out: unknown[] = [];
  const where = { score: { $gte: from, $lt: to } };
  for await (const entry of kv.list({ prefix: PREFIX }, { where, limit: RANGE_LIMIT }))
    out.push(entry);
  return out;
}

/**
 * Hand-written better-sqlite3 on the same documents: a rowid table of the JSON text, the
 * expression indexes and the FTS5 table added (and timed) on demand.
 */
export function rawSqlite(path: string) {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  const insert = db.prepare("INSERT INTO t (k, v) VALUES (?, ?)");
  db.transaction(() => {
    for (const doc of DOCS) insert.run(doc.id, JSON.stringify(doc));
  })();
  const decode = (rows: [number, string][]) => rows.map(([k, v]) => ({ k, v: JSON.parse(v) }));
  return {
    db,
    /** Milliseconds to build the index of `field`. */
    index: (field: "city" | "score") =>
      timeSync(() => db.exec(`CREATE INDEX t_${field} ON t (json_extract(v, '$.${field}'))`)),
    /** Milliseconds to build the FTS5 table of the texts (the tokenizer Cellar's `word` uses). */
    fts: () =>
      timeSync(() =>
        db.exec(`CREATE VIRTUAL TABLE f USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');
          INSERT INTO f (rowid, body) SELECT k, json_extract(v, '$.bio') FROM t;`),
      ),
    queries() {
      db.exec("ANALYZE");
      const byCity = db.prepare("SELECT k, v FROM t WHERE json_extract(v, '$.city') = ?").raw();
      const byScore = db
        .prepare(
          `SELECT k, v FROM t WHERE json_extract(v, '$.score') >= ? AND json_extract(v, '$.score') < ?
          ORDER BY k LIMIT ${RANGE_LIMIT}`,
        )
        .raw();
      const search = db
        .prepare(
          `SELECT t.k, t.v FROM f JOIN t ON t.k = f.rowid WHERE f MATCH ? ORDER BY rank LIMIT ${SEARCH_LIMIT}`,
        )
        .raw();
      const matches = db.prepare("SELECT count(*) FROM f WHERE f MATCH ?").pluck();
      const phrase = (query: string) =>
        query
          .split(" ")
          .map((w) => `"${w}"`)
          .join(" ");
      return {
        byCity: (city: string) => decode(byCity.all(city) as [number, string][]),
        byScore: ([from, to]: [number, number]) =>
          decode(byScore.all(from, to) as [number, string][]),
        search: (query: string) => decode(search.all(phrase(query)) as [number, string][]),
        matches: (query: string) => matches.get(phrase(query)) as number,
      };
    },
    close: () => db.close(),
  };
}

/** MiniSearch over the texts, in memory: search returns the best documents themselves. */
export function miniSearch() {
  const index = new MiniSearch<Doc>({ fields: ["bio"] });
  const ms = timeSync(() => index.addAll(DOCS));
  return {
    ms,
    search: (query: string) =>
      index
        .search(query, { combineWith: "AND" })
        .slice(0, SEARCH_LIMIT)
        .map((hit) => DOCS[hit.id as number]!),
    matches: (query: string) => index.search(query, { combineWith: "AND" }).length,
  };
}

function timeSync(run: () => unknown): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}
