/**
 * Mixed HTTP load on a Cellar server while Server-Sent Events subscribers watch every key it
 * writes: what the subscribers cost the requests, and whether each of them saw every commit.
 */
import { Pool } from "undici";
import { load, type Row, type Section } from "./harness.js";
import { SERVER_DURABILITY, startCellarServer } from "./server.js";
import type { ChildServer } from "./server-child.js";
import { type Streams, sseStreams } from "./stream-clients.js";
import { VALUES } from "./workload.js";
import { WRK_SKIPPED, wrk, wrkAvailable } from "./wrk.js";

export const CONNECTIONS = 50;
const SECONDS = 10;
const KEYS = 1000;

/** Subscribers of a row, and what they subscribe to. */
interface Watchers {
  readonly count: number;
  readonly path: string;
  /** The SSE event each commit sends. */
  readonly event: string;
}

const EVENTS = { path: "/api/events?pattern=k/%23", event: "set" };
const PREFIX = { path: "/api/watch/prefix?prefix=k", event: "change" };
const ROWS: readonly Watchers[] = [
  { count: 0, ...EVENTS },
  { count: 200, ...EVENTS },
  { count: 1000, ...EVENTS },
  { count: 1000, ...PREFIX },
];
const DEADLINE_MS = 60_000;

/** 75% `GET`, 25% `PUT` of a ~100-byte user, over `KEYS` keys `k/<n>` in a scattered order. */
export const MIX = `
local n = 0
local body = '{"value":{"id":%d,"name":"user-%06d","email":"user-%06d@example.com","role":"member","active":true,"score":%d}}'
local put = { ["content-type"] = "application/json" }
request = function()
  n = n + 1
  local id = (n * 7919) % ${KEYS}
  if n % 4 == 0 then
    return wrk.format("PUT", "/api/keys/k/" .. id, put, string.format(body, id, id, id, n))
  end
  return wrk.format("GET", "/api/keys/k/" .. id)
end
`;

const name = ({ count, path }: Watchers) =>
  `${count.toLocaleString("en-US")} subscriber${count === 1 ? "" : "s"}${count > 0 ? `, \`${path.split("?")[0]}\`` : ""}`;
const BASELINE = name(ROWS[0]!);

export async function eventLoadSection(dir: string, log: (step: string) => void): Promise<Section> {
  const title = `Events: HTTP 75% GET / 25% PUT, ${CONNECTIONS} connections, with SSE subscribers to every written key (ops = requests)`;
  if (!wrkAvailable()) {
    return {
      title,
      notes: [WRK_SKIPPED],
      baseline: BASELINE,
      rows: ROWS.map((watchers) => ({ name: name(watchers), ops: "n/a" as const })),
    };
  }
  const server = await startCellarServer(dir);
  let streams: Streams | null = null;
  try {
    await fill(server);
    const run = wrk(dir, MIX);
    const start = load();
    log(`events: mixed HTTP load, warm-up, load ${start}`);
    await run(server.url, CONNECTIONS, 2);
    const rows: Row[] = [];
    const received: string[] = [];
    for (const watchers of ROWS) {
      streams?.close();
      streams = null;
      if (watchers.count > 0) {
        streams = await sseStreams(server.url + watchers.path, watchers.count, watchers.event);
      }
      log(`events: mixed HTTP load with ${name(watchers)}, load ${load()}`);
      const before = await head(server);
      const counted = streams?.messages ?? 0;
      const result = await run(server.url, CONNECTIONS, SECONDS);
      const commits = (await head(server)) - before;
      if (streams) received.push(await everyone(streams, counted + commits, name(watchers)));
      rows.push({
        name: name(watchers),
        ...result,
        ...(watchers.count === 1000 && watchers.path === EVENTS.path && { target: 0.7 }),
      });
    }
    return {
      title,
      notes: [
        `load average ${start} → ${load()}; wrk -t1, ${SECONDS} s per row after a 2 s warm-up; the server (SQLite, durability ${SERVER_DURABILITY}) in a child process, the subscribers (\`GET ${EVENTS.path}\` or \`${PREFIX.path}\`, every write matching) in this one, wrk in a third: all on the same 2 cores.`,
        `What the subscribers received: ${received.join("; ")}.`,
      ],
      baseline: BASELINE,
      rows,
    };
  } finally {
    streams?.close();
    await server.stop();
  }
}

/** Writes every key the mix reads, so that each `GET` finds its entry. */
export async function fill(server: ChildServer): Promise<void> {
  const pool = new Pool(server.url, { connections: 8 });
  try {
    await Promise.all(
      Array.from({ length: KEYS }, async (_, i) => {
        const { statusCode, body } = await pool.request({
          method: "PUT",
          path: `/api/keys/k/${i}`,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ value: VALUES[i] }),
        });
        await body.text();
        if (statusCode !== 200) throw new Error(`PUT /api/keys/k/${i}: ${statusCode}`);
      }),
    );
  } finally {
    await pool.close();
  }
}

/** The server's commit counter, from its latest versionstamp (one commit, one step). */
async function head(server: ChildServer): Promise<number> {
  const response = await fetch(`${server.url}/api/watch/prefix/poll?prefix=k`);
  const { cursor } = (await response.json()) as { cursor: string };
  return Number.parseInt(cursor.slice(0, 16), 16);
}

/** Waits until every subscriber has received `goal` events in all; describes what they got. */
async function everyone(streams: Streams, goal: number, watchers: string): Promise<string> {
  try {
    await streams.caughtUp(goal, DEADLINE_MS);
  } catch {
    // Reported below.
  }
  const lagging = streams.lagging();
  if (streams.messages !== goal || lagging > 0 || streams.ended > 0) {
    return `${watchers}: NOT all — the first counted ${streams.messages.toLocaleString("en-US")} events of ${goal.toLocaleString("en-US")}, ${lagging} received less, ${streams.ended} were closed by the server`;
  }
  const size = Math.round(streams.bytes / streams.messages);
  return `${watchers}: each ${goal.toLocaleString("en-US")}, ~${size} bytes apiece on the wire`;
}
