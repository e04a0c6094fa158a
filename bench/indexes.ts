/**
 * Secondary indexes and full-text search on SQLite, 100,000 documents: where filters answered
 * from an index against a scan and against hand-written better-sqlite3 with expression indexes;
 * `kv.search` against raw FTS5 and MiniSearch; what indexes cost writes; how long a backfill
 * takes. The where-filter sections without an index (`where-filters.ts`) run on the same data.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kv, openKv } from "../src/index.js";
import {
  CITIES,
  cityOf,
  DOCS,
  DOCUMENTS,
  KEYS,
  listByCity,
  listByScore,
  load,
  miniSearch,
  PREFIX,
  QUERIES,
  RANGE_LIMIT,
  rawSqlite,
  SEARCH_LIMIT,
  scoreRange,
  updates,
} from "./documents.js";
import { compare, Latencies, queries, type Row, type Section, timed } from "./harness.js";
import { whereFilterSections } from "./where-filters.js";
import { awaited, BURST, bursts, ENTRIES } from "./workload.js";

type Log = (step: string) => void;

const RAW_INDEX = "better-sqlite3, json_extract index";
const RAW_FTS = "better-sqlite3, FTS5";
const NO_INDEX = "Cellar, no index";

/** What each store holds besides the documents, and how long building it took. */
interface Stores {
  /** No index. */
  readonly plain: Kv;
  /** An index on `city`. */
  readonly one: Kv;
  /** Indexes on `city`, `score` and `name`. */
  readonly three: Kv;
  /** A search index on `bio`. */
  readonly search: Kv;
  /** Milliseconds each Cellar backfill took. */
  readonly built: Record<"city" | "score" | "name" | "bio", number>;
}

async function timeAsync(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

/**
 * Loads the documents once and copies the file for each configuration (SQLite files at rest
 * copy whole), then builds each one's indexes, timing every backfill.
 */
async function openStores(dir: string, log: Log, closers: (() => unknown)[]): Promise<Stores> {
  const file = (name: string) => join(dir, `${name}.db`);
  const open = async (name: string) => {
    const kv = await openKv(file(name), { durability: "normal" });
    closers.push(() => kv.close());
    return kv;
  };
  log(`indexes: loading ${DOCUMENTS.toLocaleString("en-US")} documents`);
  const loading = await openKv(file("plain"), { durability: "normal" });
  await load(loading);
  await loading.close();
  copyFileSync(file("plain"), file("one"));
  copyFileSync(file("plain"), file("search"));
  log("indexes: backfilling Cellar's indexes");
  const building = await openKv(file("one"), { durability: "normal" });
  const on = (field: string) => (kv: Kv) =>
    timeAsync(() => kv.createIndex(field, { prefix: PREFIX, fields: [field] }));
  const city = await on("city")(building);
  await building.close();
  copyFileSync(file("one"), file("three"));
  const three = await open("three");
  const score = await on("score")(three);
  const name = await on("name")(three);
  const search = await open("search");
  const bio = await timeAsync(() =>
    search.createSearchIndex("bios", { prefix: PREFIX, fields: ["bio"] }),
  );
  return {
    plain: await open("plain"),
    one: await open("one"),
    three,
    search,
    built: { city, score, name, bio },
  };
}

/** Hand-written better-sqlite3 and MiniSearch on the same documents, and their build times. */
function openPeers(dir: string, closers: (() => unknown)[]) {
  const raw = rawSqlite(join(dir, "raw.db"));
  closers.push(raw.close);
  const built = { city: raw.index("city"), score: raw.index("score"), fts: raw.fts() };
  const mini = miniSearch();
  return { sql: raw.queries(), mini, built: { ...built, mini: mini.ms } };
}

type Peers = ReturnType<typeof openPeers>;

/** Throws unless every contender gave the same number of results for each question asked. */
function expectSame(what: string, counts: readonly (readonly number[])[]): void {
  for (const [q, row] of counts.entries())
    if (row.some((n) => n !== row[0]))
      throw new Error(`${what}, question ${q}: the contenders returned ${row.join(", ")}`);
}

/**
 * Checks, before anything is timed, that the indexed stores plan onto their indexes and that
 * every contender finds as much as the others (scans on a few questions only: they are slow).
 * Returns each query's number of matching documents.
 */
async function checkAnswers({ plain, three, search }: Stores, { sql, mini }: Peers) {
  const plans = [
    await three.explain({ prefix: PREFIX }, { where: { city: cityOf(0) } }),
    await three.explain({ prefix: PREFIX }, { where: { score: { $gte: 0, $lt: 1 } } }),
    await plain.explain({ prefix: PREFIX }, { where: { city: cityOf(0) } }),
  ];
  if (plans[0]!.index !== "city" || plans[1]!.index !== "score" || plans[2]!.index !== null)
    throw new Error(`unexpected plans: ${JSON.stringify(plans)}`);
  const perCity: number[][] = [];
  for (let i = 0; i < CITIES; i++) {
    const counts = [(await listByCity(three, cityOf(i))).length, sql.byCity(cityOf(i)).length];
    if (i < 3) counts.push((await listByCity(plain, cityOf(i))).length);
    perCity.push(counts);
  }
  expectSame("city", perCity);
  const perRange: number[][] = [];
  for (let i = 0; i < 50; i++) {
    const counts = [
      (await listByScore(three, scoreRange(i))).length,
      sql.byScore(scoreRange(i)).length,
    ];
    if (i < 2) counts.push((await listByScore(plain, scoreRange(i))).length);
    perRange.push(counts);
  }
  expectSame("score range", perRange);
  if (perRange.some(([n]) => n !== RANGE_LIMIT))
    throw new Error(`a score range matched fewer than ${RANGE_LIMIT} entries`);
  const perQuery: number[][] = [];
  for (const query of QUERIES) {
    const { hits } = await search.search("bios", query, { limit: SEARCH_LIMIT });
    perQuery.push([hits.length, sql.search(query).length, mini.search(query).length]);
  }
  expectSame("search", perQuery);
  // Top pages agree in length whenever both engines find enough: compare whole match counts.
  const matches = QUERIES.map((query) => sql.matches(query));
  expectSame(
    "search, every match",
    QUERIES.slice(0, 32).map((query, i) => [matches[i]!, mini.matches(query)]),
  );
  return matches;
}

/** `min–max` of `values`. */
const spread = (values: readonly number[]) => `${Math.min(...values)}–${Math.max(...values)}`;

const N = DOCUMENTS.toLocaleString("en-US");

async function readSections(
  { plain, three, search }: Stores,
  { sql, mini }: Peers,
  matches: readonly number[],
  log: Log,
): Promise<Section[]> {
  log("indexes: equality where filter");
  const equality = await compare([
    queries("Cellar, index on city", (i) => listByCity(three, cityOf(i)), { target: 0.5 }),
    queries(NO_INDEX, (i) => listByCity(plain, cityOf(i))),
    queries(RAW_INDEX, (i) => sql.byCity(cityOf(i))),
  ]);
  log("indexes: range where filter");
  const range = await compare([
    queries("Cellar, index on score", (i) => listByScore(three, scoreRange(i))),
    queries(NO_INDEX, (i) => listByScore(plain, scoreRange(i))),
    queries(RAW_INDEX, (i) => sql.byScore(scoreRange(i))),
  ]);
  log("indexes: full-text search");
  const query = (i: number) => QUERIES[i % QUERIES.length]!;
  const searches = await compare([
    queries("Cellar kv.search (FTS5)", (i) => search.search("bios", query(i)), { target: 0.5 }),
    queries(RAW_FTS, (i) => sql.search(query(i))),
    queries("MiniSearch, in memory", (i) => mini.search(query(i))),
  ]);
  const perCity = new Map<string, number>();
  for (const doc of DOCS) perCity.set(doc.city, (perCity.get(doc.city) ?? 0) + 1);
  return [
    {
      title: `Indexes: where { city } equality, ~100 of ${N} entries, all read (ops = queries)`,
      notes: [`${CITIES} cities, ${spread([...perCity.values()])} entries each`],
      rows: equality,
      baseline: RAW_INDEX,
    },
    {
      title: `Indexes: where { score } range, first ${RANGE_LIMIT} of ~200 matches in key order (ops = queries)`,
      rows: range,
      baseline: RAW_INDEX,
    },
    {
      title: `Indexes: two-word full-text search over ${N} texts, best ${SEARCH_LIMIT} (ops = queries)`,
      notes: [`${QUERIES.length} queries, ${spread(matches)} matching documents each`],
      rows: searches,
      baseline: RAW_FTS,
    },
  ];
}

/** `kv.set` of document `i`, alternating between its loaded and its updated version. */
function documentWriter(kv: Kv): (i: number) => Promise<unknown> {
  const updated = updates(ENTRIES);
  const flipped = new Uint8Array(ENTRIES);
  return (i) => {
    flipped[i] = flipped[i] ? 0 : 1;
    return kv.set(KEYS[i]!, flipped[i] ? updated[i]! : DOCS[i]!);
  };
}

async function writeSections({ plain, one, three, search }: Stores, log: Log): Promise<Section[]> {
  const writers: [string, Kv][] = [
    [NO_INDEX, plain],
    ["Cellar, 1 index", one],
    ["Cellar, 3 indexes", three],
    ["Cellar, 1 search index", search],
  ];
  log("indexes: sequential set");
  const sequential = await compare(
    writers.map(([name, kv]) => {
      const latencies = new Latencies();
      return { name, batch: awaited(timed(documentWriter(kv), latencies)), latencies };
    }),
  );
  log(`indexes: ${BURST} concurrent sets`);
  const concurrent = await compare(
    writers.map(([name, kv]) => ({ name, batch: bursts(documentWriter(kv)), opsPerCall: BURST })),
  );
  return [
    {
      title: `Indexes: sequential set on ${N} entries, durability normal`,
      notes: ["3 indexes: city, score and name; a write changes city, score and text"],
      rows: sequential,
      baseline: NO_INDEX,
    },
    {
      title: `Indexes: ${BURST} concurrent sets on ${N} entries, durability normal (ops = sets)`,
      rows: concurrent,
      baseline: NO_INDEX,
    },
  ];
}

/** Backfills, timed once each, as entries indexed per second. */
function buildSections(cellar: Stores["built"], peers: Peers["built"]): Section[] {
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const took = (rows: [string, number][]) =>
    rows.map(([name, ms]) => `${name}: ${seconds(ms)}`).join("; ");
  const rows = (built: [string, number][]): Row[] =>
    built.map(([name, ms]) => ({ name, ops: (DOCUMENTS * 1000) / ms }));
  const rawIndex = "better-sqlite3 CREATE INDEX, city";
  const rawFts = "better-sqlite3 FTS5, INSERT … SELECT";
  return [
    {
      title: `Indexes: building an index over ${N} entries, once (ops = entries)`,
      notes: [
        took([
          ["Cellar city", cellar.city],
          ["score", cellar.score],
          ["name", cellar.name],
          ["better-sqlite3 city", peers.city],
          ["score", peers.score],
        ]),
      ],
      rows: rows([
        ["Cellar createIndex, city", cellar.city],
        [rawIndex, peers.city],
      ]),
      baseline: rawIndex,
    },
    {
      title: `Indexes: building a search index over ${N} texts, once (ops = entries)`,
      notes: [
        took([
          ["Cellar", cellar.bio],
          ["FTS5", peers.fts],
          ["MiniSearch", peers.mini],
        ]),
      ],
      rows: rows([
        ["Cellar createSearchIndex", cellar.bio],
        [rawFts, peers.fts],
        ["MiniSearch addAll, in memory", peers.mini],
      ]),
      baseline: rawFts,
    },
  ];
}

/** Reads first, then the where filters without an index, then writes (they change the data). */
export async function indexesSections(log: Log): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-indexes-"));
  const closers: (() => unknown)[] = [];
  try {
    const stores = await openStores(dir, log, closers);
    log("indexes: raw better-sqlite3 and MiniSearch");
    const peers = openPeers(dir, closers);
    log("indexes: checking that every contender answers alike");
    const matches = await checkAnswers(stores, peers);
    return [
      ...(await readSections(stores, peers, matches, log)),
      ...(await whereFilterSections(join(dir, "plain.db"), stores.plain.namespaceName, log)),
      ...(await writeSections(stores, log)),
      ...buildSections(stores.built, peers.built),
    ];
  } finally {
    for (const close of closers) await close();
    rmSync(dir, { recursive: true, force: true });
  }
}
