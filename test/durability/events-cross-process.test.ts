/**
 * Events across processes: a subscriber in another process on the same SQLite file, SSE on one
 * Cellar server of writes made through another on the same PostgreSQL database, and remote
 * clients of one server seeing each other's writes. Every event carries the entry before and
 * after its commit, and a subscriber that went away resumes with exactly what it missed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type Kv, type KvEvent, openKv, REST } from "../../src/index.js";
import { cellarServe, type Served } from "../cli/serve.js";
import { type EventStream, sse, tempDir } from "../http/helpers.js";

const dir = tempDir("cellar-events-xproc-");
afterAll(() => dir.cleanup());

/** What a test compares of an event: versionstamp, type, key, value before and after. */
type Seen = [string, string, unknown[], unknown, unknown];
const seen = (
  event: Pick<KvEvent, "versionstamp" | "type" | "key" | "entry" | "previous">,
): Seen => [
  event.versionstamp,
  event.type,
  [...event.key],
  event.previous?.value ?? null,
  event.entry?.value ?? null,
];

/** A process subscribed to `["orders", REST]` on the SQLite file `path`, printing each event. */
class Subscriber {
  readonly events: Seen[] = [];
  readonly child: ChildProcess;
  readonly #ready: Promise<void>;

  constructor(path: string, since: string | undefined) {
    const index = new URL("../../src/index.ts", import.meta.url).href;
    const script = `
      import { openKv, REST } from ${JSON.stringify(index)};
      const kv = await openKv(${JSON.stringify(path)});
      kv.subscribe(["orders", REST], (e) => console.log(JSON.stringify(
        [e.versionstamp, e.type, e.key, e.previous?.value ?? null, e.entry?.value ?? null])),
        { ${since === undefined ? "" : `since: ${JSON.stringify(since)},`}
          onError: (error) => { if (error.code !== "DATABASE_CLOSED") process.exit(3); } });
      console.log("ready");
      // A subscription holds no handle that keeps node running: this process only listens.
      setInterval(() => {}, 60_000);
      process.on("SIGTERM", () => kv.close().then(() => process.exit(0)));`;
    this.child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: this.child.stdout! });
    this.#ready = new Promise((resolve) => {
      lines.on("line", (line) => {
        if (line === "ready") resolve();
        else this.events.push(JSON.parse(line) as Seen);
      });
    });
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  /** Waits until `n` events arrived (and a little longer, to catch any extra). */
  async take(n: number): Promise<Seen[]> {
    const deadline = Date.now() + 10_000;
    while (this.events.length < n && Date.now() < deadline) await sleep(20);
    await sleep(200);
    return this.events.splice(0);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill("SIGTERM");
    await once(this.child, "exit");
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes through `kv` what every scenario writes: sets, updates, deletes, a multi-key commit. */
async function writeOrders(kv: Kv, round: string): Promise<Seen[]> {
  const expected: Seen[] = [];
  const one = await kv.set(["orders", round, 1], "placed");
  expected.push([one.versionstamp, "set", ["orders", round, 1], null, "placed"]);
  await kv.set(["other", round], "not matched");
  const two = await kv.set(["orders", round, 1], "paid");
  expected.push([two.versionstamp, "set", ["orders", round, 1], "placed", "paid"]);
  const both = await kv
    .atomic()
    .set(["orders", round, 3], "placed")
    .set(["orders", round, 2], "placed")
    .delete(["orders", round, 1])
    .commit();
  if (!both.ok) throw new Error("the commit failed");
  expected.push(
    [both.versionstamp, "delete", ["orders", round, 1], "paid", null],
    [both.versionstamp, "set", ["orders", round, 2], null, "placed"],
    [both.versionstamp, "set", ["orders", round, 3], null, "placed"],
  );
  return expected;
}

describe("two processes on one SQLite file", () => {
  let subscriber: Subscriber | undefined;
  afterAll(() => subscriber?.stop());

  it("delivers every commit of one process to a subscriber in the other, then only what it missed after a restart", async () => {
    const path = join(dir.path, "events.db");
    const kv = await openKv(path);
    try {
      subscriber = new Subscriber(path, undefined);
      await subscriber.ready();
      const first = await writeOrders(kv, "a");
      expect(await subscriber.take(first.length)).toEqual(first);
      await subscriber.stop();

      const missed = await writeOrders(kv, "b");
      subscriber = new Subscriber(path, first.at(-1)![0]);
      await subscriber.ready();
      const live = await writeOrders(kv, "c");
      expect(await subscriber.take(missed.length + live.length)).toEqual([...missed, ...live]);
    } finally {
      await kv.close();
    }
  });
});

describe("two servers on one PostgreSQL database", () => {
  const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const schema = `cellar_events_${randomBytes(4).toString("hex")}`;
  const servers: Served[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    const client = new pg.Client({ connectionString: POSTGRES });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  /** The next `n` events of an SSE stream, progress skipped, as {@link Seen}. */
  async function take(stream: EventStream, n: number): Promise<Seen[]> {
    const out: Seen[] = [];
    while (out.length < n) {
      const { event, data } = await stream.next(10_000);
      if (event !== "progress") out.push(seen(data));
    }
    return out;
  }

  it("streams to an SSE subscriber of one server the writes made through the other", async () => {
    const db = `${POSTGRES}?schema=${schema}`;
    for (let i = 0; i < 2; i++) servers.push(cellarServe(["--db", db, "--port", "0"]));
    const [one, two] = await Promise.all(servers.map((server) => server.listening()));
    const stream = await sse(one!, "/api/events?pattern=orders/%23");
    const writer = await openKv(two!);
    try {
      expect(stream.status).toBe(200);
      const expected = await writeOrders(writer, "pg");
      expect(await take(stream, expected.length)).toEqual(expected);
      stream.close();

      const missed = await writeOrders(writer, "pg2");
      const resumed = await sse(one!, "/api/events?pattern=orders/%23", {
        headers: { "last-event-id": expected.at(-1)![0] },
      });
      try {
        expect(await take(resumed, missed.length)).toEqual(missed);
      } finally {
        resumed.close();
      }
    } finally {
      stream.close();
      await writer.close();
    }
  }, 30_000);
});

describe("remote clients of one server", () => {
  let server: Served | undefined;
  afterAll(() => server?.stop());

  it("gives one client's subscription the writes of another, and resumes with since", async () => {
    server = cellarServe(["--db", join(dir.path, "remote.db"), "--port", "0"]);
    const url = await server.listening();
    const reader = await openKv(url);
    const writer = await openKv(url);
    try {
      const received: Seen[] = [];
      const stop = reader.subscribe(["orders", REST], (event) => received.push(seen(event)));
      // A remote client's subscription starts once its change stream is connected, which a
      // read of the change log waits for.
      await reader.currentVersionstamp();
      const expected = await writeOrders(writer, "r");
      await until(() => received.length >= expected.length);
      expect(received.splice(0)).toEqual(expected);
      stop();

      const missed = await writeOrders(writer, "r2");
      const again: Seen[] = [];
      reader.subscribe(["orders", REST], (event) => again.push(seen(event)), {
        since: expected.at(-1)![0],
      });
      await until(() => again.length >= missed.length);
      await sleep(200);
      expect(again).toEqual(missed);
    } finally {
      await reader.close();
      await writer.close();
    }
  });
});

async function until(check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await sleep(20);
  }
}
