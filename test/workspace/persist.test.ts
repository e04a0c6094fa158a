/**
 * Y.Docs persisted in Cellar, on every backend: the state survives a restart, several `Kv`s of
 * one database (two opens of a SQLite file, two processes, two PostgreSQL clients) converge
 * through the change feed, the log is compacted into a snapshot, and updates larger than one
 * value go into a snapshot cut in pieces; an update whose flush resolved survives a SIGKILL.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import * as Y from "yjs";
import { type Kv, openKv } from "../../src/index.js";
import { openPersistedDoc, type PersistedDoc } from "../../src/workspace/persist.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const run = randomBytes(4).toString("hex");
const schemas: string[] = [];
const dir = mkdtempSync(join(tmpdir(), "cellar-ydoc-"));

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (schemas.length === 0) return;
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

interface Storage {
  /** Another `Kv` on the same storage (for memory, the one database, which lives until the end). */
  readonly open: () => Promise<Kv>;
  /** Closes a `Kv` from `open`, as a process stopping would (memory: nothing). */
  readonly release: (kv: Kv) => Promise<void>;
}

interface Backend {
  readonly name: string;
  fresh(options?: { maxValueSize?: number }): Storage;
}

let files = 0;
const BACKENDS: Backend[] = [
  { name: "memory", fresh: (options) => memoryBackend(options) },
  {
    name: "sqlite",
    fresh: (options) => {
      const path = join(dir, `doc-${files++}.db`);
      return { open: () => openKv(path, limitsOf(options)), release: (kv) => kv.close() };
    },
  },
  {
    name: "postgres",
    fresh: (options) => {
      const schema = `cellar_ydoc_${run}_${schemas.length}`;
      schemas.push(schema);
      return {
        open: () => openKv(`${POSTGRES}?schema=${schema}`, limitsOf(options)),
        release: (kv) => kv.close(),
      };
    },
  },
];

function memoryBackend(options?: { maxValueSize?: number }): Storage {
  const root = openKv(":memory:", limitsOf(options));
  return { open: () => root, release: async () => {} };
}

const limitsOf = (options?: { maxValueSize?: number }) =>
  options?.maxValueSize ? { limits: { maxValueSize: options.maxValueSize } } : {};

const WORKSPACE = "workspace-app";

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const text = (stored: PersistedDoc) => stored.doc.getText("t").toString();
const map = (stored: PersistedDoc) => stored.doc.getMap("kv").toJSON();

describe.each(BACKENDS)("$name", (backend) => {
  it("keeps every flushed update across a restart", async () => {
    const { open, release } = backend.fresh();
    const kv = await open();
    const first = await openPersistedDoc(kv.namespace(WORKSPACE));
    first.doc.getText("t").insert(0, "hello");
    first.doc.getMap("kv").set("theme", "dark");
    await first.flush();
    first.doc.getText("t").insert(5, " world");
    await first.close(); // writes what is pending
    await release(kv);

    const again = await open();
    const second = await openPersistedDoc(again.namespace(WORKSPACE));
    expect(text(second)).toBe("hello world");
    expect(map(second)).toEqual({ theme: "dark" });
    await second.close();
    await release(again);
  });

  it("keeps workspaces of different namespaces apart", async () => {
    const { open, release } = backend.fresh();
    const kv = await open();
    const a = await openPersistedDoc(kv.namespace("workspace-a"));
    a.doc.getMap("kv").set("owner", "a");
    await a.close();
    const b = await openPersistedDoc(kv.namespace("workspace-b"));
    expect(map(b)).toEqual({});
    await b.close();
    await release(kv);
  });

  it("compacts the log into a snapshot and loads the same state from it", async () => {
    const { open, release } = backend.fresh();
    const kv = await open();
    const ns = kv.namespace(WORKSPACE);
    const stored = await openPersistedDoc(ns, { compactAfterUpdates: 10 });
    const ytext = stored.doc.getText("t");
    for (let i = 0; i < 35; i++) {
      ytext.insert(ytext.length, `${i},`);
      await stored.flush();
    }
    ytext.delete(0, 10); // deleted content is collected by the next compaction
    await stored.compact();
    const log = await ns.count({ prefix: ["ydoc", "u"] });
    expect(log).toBe(0);
    const head = await ns.get<{ merged: number; parts: number }>(["ydoc", "snapshot"]);
    expect(head.value?.merged).toBe(36);
    expect(head.value?.parts).toBe(1);
    const expected = ytext.toString();
    await stored.close();

    const reopened = await openPersistedDoc(ns);
    expect(text(reopened)).toBe(expected);
    await reopened.close();
    await release(kv);
  });

  it("writes an update larger than one value as a snapshot in pieces", async () => {
    const { open, release } = backend.fresh({ maxValueSize: 4096 });
    const kv = await open();
    const ns = kv.namespace(WORKSPACE);
    const writer = await openPersistedDoc(ns);
    const reader = await openPersistedDoc(ns, { doc: new Y.Doc() });
    const big = "x".repeat(20_000) + randomBytes(8_000).toString("hex");
    writer.doc.getText("t").insert(0, big);
    await writer.flush();
    const head = await ns.get<{ parts: number }>(["ydoc", "snapshot"]);
    expect(head.value?.parts).toBeGreaterThan(4);
    await until(() => text(reader) === big, "the reader to get the pieces");
    writer.doc.getText("t").insert(0, "!");
    await writer.close();
    await until(() => text(reader) === `!${big}`, "a small update after the snapshot");
    await reader.close();

    const reopened = await openPersistedDoc(ns);
    expect(text(reopened)).toBe(`!${big}`);
    await reopened.close();
    await release(kv);
  });

  it("writes a tick's updates as one log entry, as many as one value holds", async () => {
    const { open, release } = backend.fresh({ maxValueSize: 4096 });
    const kv = await open();
    const ns = kv.namespace(WORKSPACE);
    const stored = await openPersistedDoc(ns, { compactAfterUpdates: 1000 });
    const reader = await openPersistedDoc(ns, { doc: new Y.Doc() });
    const ytext = stored.doc.getText("t");
    for (let i = 0; i < 10; i++) ytext.insert(ytext.length, `${i}`);
    await stored.flush();
    expect(await ns.count({ prefix: ["ydoc", "u"] })).toBe(1);
    for (let i = 0; i < 1000; i++) ytext.insert(ytext.length, "x");
    await stored.flush();
    const entries = await ns.count({ prefix: ["ydoc", "u"] });
    expect(entries).toBeGreaterThan(2);
    expect(entries).toBeLessThan(100);
    await until(() => text(reader) === ytext.toString(), "the reader to apply every entry");
    await stored.close();
    await reader.close();
    const reopened = await openPersistedDoc(ns);
    expect(text(reopened)).toBe(`0123456789${"x".repeat(1000)}`);
    await reopened.close();
    await release(kv);
  });

  it("writes the content a doc held before it was opened", async () => {
    const { open, release } = backend.fresh();
    const kv = await open();
    const ns = kv.namespace(WORKSPACE);
    const doc = new Y.Doc();
    doc.getMap("kv").set("locale", "en-GB");
    const stored = await openPersistedDoc(ns, { doc });
    await stored.close();
    const reopened = await openPersistedDoc(ns);
    expect(map(reopened)).toEqual({ locale: "en-GB" });
    await reopened.close();
    await release(kv);
  });

  it("converges with another Kv of the same database, compacting as both write", async () => {
    const { open, release } = backend.fresh();
    const kvA = await open();
    const kvB = await open();
    const a = await openPersistedDoc(kvA.namespace(WORKSPACE), { compactAfterUpdates: 7 });
    const b = await openPersistedDoc(kvB.namespace(WORKSPACE), { compactAfterUpdates: 7 });
    const rounds = 30;
    for (let i = 0; i < rounds; i++) {
      a.doc.getText("t").insert(0, "a");
      b.doc.getText("t").insert(0, "b");
      a.doc.getMap("kv").set(`a${i}`, i);
      b.doc.getMap("kv").set("last", `b${i}`);
      await Promise.all([a.flush(), b.flush()]);
    }
    await until(
      () => text(a).length === 2 * rounds && text(a) === text(b),
      "both docs to hold every edit",
    );
    expect(map(a)).toEqual(map(b));
    expect(map(a).last).toBe(`b${rounds - 1}`);
    const expected = text(a);
    await a.close();
    await b.close();
    await release(kvA);
    await release(kvB);

    const kv = await open();
    const reopened = await openPersistedDoc(kv.namespace(WORKSPACE));
    expect(text(reopened)).toBe(expected);
    expect(await kv.namespace(WORKSPACE).count({ prefix: ["ydoc", "u"] })).toBeLessThan(2 * rounds);
    await reopened.close();
    await release(kv);
  });
});

describe("sqlite across processes", () => {
  it("applies another process's updates to an open doc, and that process sees ours", async () => {
    const path = join(dir, "processes.db");
    const kv = await openKv(path);
    const stored = await openPersistedDoc(kv.namespace(WORKSPACE));
    stored.doc.getMap("kv").set("here", true);
    await stored.flush();

    const persist = new URL("../../src/workspace/persist.ts", import.meta.url).href;
    const index = new URL("../../src/index.ts", import.meta.url).href;
    const script = `
      import { openKv } from ${JSON.stringify(index)};
      import { openPersistedDoc } from ${JSON.stringify(persist)};
      const kv = await openKv(${JSON.stringify(path)});
      const stored = await openPersistedDoc(kv.namespace(${JSON.stringify(WORKSPACE)}));
      const seen = stored.doc.getMap("kv").get("here");
      stored.doc.getMap("kv").set("there", seen === true ? "saw here" : "missed here");
      stored.doc.getText("t").insert(0, "from the child");
      await stored.close();
      await kv.close();`;
    await promisify(execFile)(process.execPath, [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      script,
    ]);

    await until(() => text(stored) === "from the child", "the child's update");
    expect(map(stored)).toEqual({ here: true, there: "saw here" });
    await stored.close();
    await kv.close();
  });
});

describe("sqlite after a crash", () => {
  it("keeps every update whose flush resolved before the process was killed", async () => {
    const path = join(dir, "crash.db");
    const persist = new URL("../../src/workspace/persist.ts", import.meta.url).href;
    const index = new URL("../../src/index.ts", import.meta.url).href;
    // Writes forever: one key per flush, the log compacting every 20 entries; reports each ack.
    const script = `
      import { openKv } from ${JSON.stringify(index)};
      import { openPersistedDoc } from ${JSON.stringify(persist)};
      const kv = await openKv(${JSON.stringify(path)});
      const stored = await openPersistedDoc(kv.namespace(${JSON.stringify(WORKSPACE)}), { compactAfterUpdates: 20 });
      for (let i = 0; ; i++) {
        stored.doc.getMap("kv").set("k" + i, i);
        stored.doc.getText("t").insert(0, "x");
        await stored.flush();
        process.stdout.write("ack " + i + "\\n");
      }`;
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += String(chunk);
    });
    await until(() => (output.match(/ack \d+/g) ?? []).length >= 150, "150 acknowledged updates");
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    const acked = Math.max(
      ...(output.match(/ack (\d+)/g) ?? []).map((line) => Number(line.slice(4))),
    );

    const kv = await openKv(path);
    const stored = await openPersistedDoc(kv.namespace(WORKSPACE));
    const keys = map(stored);
    for (let i = 0; i <= acked; i++) expect(keys[`k${i}`]).toBe(i);
    expect(text(stored).length).toBeGreaterThanOrEqual(acked + 1);
    await stored.close();
    await kv.close();
  });
});
