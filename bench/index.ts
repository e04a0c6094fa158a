/**
 * Runs the benchmark groups and prints their tables; a full run also writes bench/RESULTS.md.
 *
 *   npx tsx bench/index.ts [memory] [sqlite] [deno] [server] [queue] [events] [observe] [postgres] [indexes] [workspaces] [sync] [mirror] [backup] [cli] [scale]
 *
 * No group: all but the opt-in ones (see `OPT_IN`).
 */
import { writeFileSync } from "node:fs";
import { denoKvBench } from "./deno-kv.js";
import { DOCUMENTS } from "./documents.js";
import { sqliteSections } from "./embedded.js";
import { eventsSections } from "./events.js";
import {
  load,
  machine,
  markdown,
  printSection,
  printTargets,
  type Section,
  targets,
} from "./harness.js";
import { indexesSections } from "./indexes.js";
import { memorySections } from "./memory.js";
import { observeSections } from "./observe.js";
import { CONCURRENCY, JOBS, PACED_RATE, POLL_MS, queueSections } from "./queue.js";
import { CONNECTIONS, SERVER_DURABILITY, serverSections } from "./server.js";
import { syncSections } from "./sync.js";
import { BURST_WRITES, CLIENTS, GAP_MS, PROCESSES } from "./sync-fan-out.js";
import { BURST, ENTRIES, LIST_LIMIT } from "./workload.js";
import { workspacesSections } from "./workspaces.js";

type Log = (step: string) => void;

const GROUPS: Record<string, (log: Log) => Promise<Section[]>> = {
  memory: memorySections,
  sqlite: async (log) => sqliteSections(await denoKvBench(log), log),
  deno: async (log) => (await import("./deno-binary.js")).denoSections(log),
  server: serverSections,
  queue: queueSections,
  events: eventsSections,
  observe: observeSections,
  postgres: async (log) => (await import("./postgres.js")).postgresSections(log),
  cli: async (log) => (await import("./cli.js")).cliSections(log),
  mirror: async (log) => (await import("./mirror.js")).mirrorSections(log),
  backup: async (log) => (await import("./backup.js")).backupSections(log),
  indexes: indexesSections,
  workspaces: workspacesSections,
  sync: syncSections,
  scale: async (log) => (await import("./scale.js")).scaleSections(log),
};

/** Groups run only when named: they take far longer than the rest (scale: see bench/scale.ts). */
const OPT_IN = new Set(["scale"]);

const NOTES = [
  `Every contender holds the same ${ENTRIES.toLocaleString("en-US")} entries: keys \`["users", i]\`, values ~100-byte JSON objects.`,
  "Each figure: 0.3 s warm-up, then the best of five 0.3 s slices, taken in turns across contenders; all visit keys in the same scattered order.",
  "Writes always change the stored value (SQLite skips rewriting an identical row).",
  "Async APIs are awaited one call at a time; raw better-sqlite3 and lmdb reads are plain synchronous loops.",
  `Concurrent sets: rounds of ${BURST} writes started together and awaited with \`Promise.all\`.`,
  `Lists read the first ${LIST_LIMIT} entries of the prefix \`["users"]\`, keys and values decoded.`,
  '@deno/kv runs in a child process; "hung" means it stopped answering and was killed, "n/a" that it never ran.',
  `Server: the Cellar server (SQLite, durability ${SERVER_DURABILITY}) and the bare node:http server each run in a child process; wrk drives ${CONNECTIONS} keep-alive connections; latency is per request.`,
  "Remote client: `openKv(url)` against that server, ioredis against the local Redis (no persistence); sequential latencies are per call.",
  `Queue: ${JOBS.toLocaleString("en-US")} jobs enqueued ${BURST} at a time (\`Promise.all\`), handlers that return at once, concurrency ${CONCURRENCY}; latency runs from the enqueue call to the handler's start. The dequeueMany loop leases up to ${CONCURRENCY}, handles and acks them, and sleeps ${POLL_MS} ms when the queue is empty. BullMQ removes finished jobs (\`removeOnComplete\`), as an ack removes a Cellar message.`,
  "Queue figures: every contender runs enqueue-only, drain, flood and paced phases in one round; rounds take turns across contenders, three times, and the best round is kept. Flood latencies are mostly time spent behind the backlog of jobs enqueued earlier.",
  `Queue latency: ${PACED_RATE} jobs/s offered for 2 s with the consumer running; the round with the lowest median is kept.`,
  `Indexes: ${DOCUMENTS.toLocaleString("en-US")} documents under \`["users", id]\`, ~280-byte JSON: a \`city\` of 1,000, a \`score\` below 100,000, the where-filter fields (\`group\`, \`email\`, \`age\`, \`tags\`) and 2–3 sentences of \`bio\` drawn from 2,000 made-up words by Zipf's law, all from fixed seeds. One SQLite file (durability normal) per configuration: no index; \`city\`; \`city\`, \`score\` and \`name\`; a search index on \`bio\`. Raw better-sqlite3 holds the same JSON in a rowid table with \`json_extract\` expression indexes (analyzed) and an FTS5 table with Cellar's word tokenizer; MiniSearch holds the texts in memory. Every contender is first checked to return as many results as the others; queries take turns over cities, score ranges and 256 word pairs; latencies are per query.`,
  "Workspaces: Cellar's server (each update checked against the definition, committed, then sent on) and @y/websocket-server 0.1.1 (documents in memory, nothing stored) each run in a child process. Inserts are prepared beforehand and sent at once by plain `ws` clients that ignore what they receive; a y-websocket client times the round until it holds every insert, so every figure covers receiving, applying, storing (Cellar) and sending each update to every client. Syncs run from `connectDoc` to `whenSynced`; memory is heap growth after a full collection, counted over 100 documents.",
  `Sync: client stores (\`createClientKv\`, memory or SQLite file storage) against a Cellar server in a child process on a SQLite file (durability full, the default). Local writes run one at a time, each until \`confirmed\`; the fan-out sends one write every ${GAP_MS} ms, then ${BURST_WRITES} at once, from one client to ${CLIENTS - 1} others spread over ${PROCESSES} child processes, timed on the clock the processes share, beside the remote client's writes to as many \`/api/events\` WebSockets and Redis pub/sub through ioredis; catch-up replays the 10,000 commits a disconnected client missed.`,
];

const requested = process.argv.slice(2);
const unknown = requested.filter((name) => !(name in GROUPS));
if (unknown.length > 0) {
  console.error(`unknown group ${unknown.join(", ")}; groups: ${Object.keys(GROUPS).join(", ")}`);
  process.exit(2);
}
const names =
  requested.length > 0 ? requested : Object.keys(GROUPS).filter((name) => !OPT_IN.has(name));

const started = performance.now();
const log: Log = (step) =>
  process.stderr.write(
    `[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s, load ${load()}] ${step}\n`,
  );

console.log(`Cellar benchmarks (${names.join(", ")}): ${machine()}`);
const sections: Section[] = [];
for (const name of names) sections.push(...(await GROUPS[name]!(log)));

for (const section of sections) printSection(section);
printTargets(targets(sections));
const seconds = ((performance.now() - started) / 1000).toFixed(0);
if (requested.length === 0) {
  writeFileSync(new URL("./RESULTS.md", import.meta.url), markdown(sections, NOTES));
  console.log(`\nWrote bench/RESULTS.md in ${seconds} s.`);
} else {
  // A partial run would drop the other groups' figures from the file.
  console.log(`\nDone in ${seconds} s; bench/RESULTS.md is written by full runs only.`);
}
