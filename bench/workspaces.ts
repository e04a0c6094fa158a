/**
 * Workspaces: Yjs sync through one server, Cellar's (each update checked, committed to SQLite
 * with durability full, then broadcast) against @y/websocket-server 0.1.1 (documents in memory,
 * nothing stored), each in a child process (`workspaces-child.ts`).
 *
 * - Updates per second with 10 and 100 clients: each client sends its share of one-character
 *   inserts into the same `ytext`, prepared beforehand and sent at once over a plain `ws`
 *   socket that ignores what it receives; the figure runs until a y-websocket client (the
 *   observer) holds every insert, so it covers the server receiving, applying, storing and
 *   sending each update to every client.
 * - A new client's sync of a document built from 10,000 updates: from `connectDoc` to
 *   `whenSynced`, with the document open on the server, and (Cellar) with a document the server
 *   has to load from the database first (a restarted server, warmed up by another document).
 * - Memory per open document: heap growth of the server process after a full collection, for
 *   documents of 100 updates, with no client connected.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import * as Y from "yjs";
import { updateMessage } from "../src/server/workspaces/rooms.js";
import { ytext } from "../src/workspace/columns.js";
import { defineWorkspace } from "../src/workspace/define.js";
import { bindWorkspace } from "../src/workspace/doc.js";
import { connectDoc } from "../src/workspace/remote.js";
import { interleave, Latencies, load, type Row, type Section } from "./harness.js";

/** Updates per round, shared by the clients. */
const UPDATES = 10_000;
const CLIENT_COUNTS = [10, 100] as const;
const ROUNDS = 3;
/** Syncs measured per row. */
const SYNCS = 20;
/** Documents Cellar's server loads from the database for the figure of a first sync. */
const COLD_SYNCS = 5;
const MEMORY_DOCS = 100;
const MEMORY_UPDATES = 100;

type Log = (step: string) => void;
type Kind = "cellar" | "cellar-memory" | "peer";

const NAMES: Record<Kind, string> = {
  cellar: "Cellar (SQLite, durability full)",
  "cellar-memory": "Cellar (memory)",
  peer: "@y/websocket-server 0.1.1 (memory)",
};

const shape = defineWorkspace({ id: "w0", kv: { notes: ytext() } });

interface Child {
  readonly url: string;
  memory(): Promise<number>;
  quit(): Promise<void>;
}

async function startChild(kind: Kind, db: string): Promise<Child> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      "--expose-gc",
      "--import",
      "tsx",
      new URL("./workspaces-child.ts", import.meta.url).pathname,
      kind === "peer" ? "peer" : "cellar",
      kind === "cellar-memory" ? ":memory:" : db,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (prefix: string) => {
    for (;;) {
      const { value, done } = await lines.next();
      if (done) throw new Error(`the ${kind} server ended`);
      if (value.startsWith(prefix)) return value.slice(prefix.length);
    }
  };
  const url = await next("url ");
  return {
    url,
    async memory() {
      child.stdin!.write("mem\n");
      return Number((await next("mem ")).split(" ")[0]);
    },
    async quit() {
      child.stdin!.write("quit\n");
      await new Promise((resolve) => child.once("exit", resolve));
    },
  };
}

/** The messages of one client's inserts: the text's genesis update, then one per character. */
function prepare(client: number, count: number): Uint8Array[] {
  const doc = new Y.Doc();
  doc.clientID = 1_000_000 + client;
  const updates: Uint8Array[] = [];
  doc.on("update", (update: Uint8Array) => updates.push(update));
  const text = bindWorkspace(shape, doc).$kv.notes.get();
  for (let i = 0; i < count; i++) text.insert(text.length, "x");
  doc.destroy();
  return updates.map(updateMessage);
}

function socket(url: string, room: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/workspaces/${room}/sync`);
  ws.on("message", () => {});
  ws.on("error", () => {});
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

function textLength(doc: Y.Doc): number {
  const text = doc.getMap("kv").get("notes");
  return text instanceof Y.Text ? text.length : 0;
}

function whenLength(doc: Y.Doc, length: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (textLength(doc) < length) return;
      doc.off("update", check);
      resolve();
    };
    doc.on("update", check);
    check();
  });
}

let rooms = 0;
const nextRoom = () => `w${rooms++}`;

/** Sends `UPDATES` inserts from `clients` clients; resolves to updates per second. */
async function throughput(child: Child, clients: number): Promise<number> {
  const room = nextRoom();
  const each = UPDATES / clients;
  const messages = Array.from({ length: clients }, (_, i) => prepare(i, each));
  const observer = connectDoc(child.url, room);
  await observer.whenSynced;
  const sockets = await Promise.all(messages.map(() => socket(child.url, room)));
  const done = whenLength(observer.doc, UPDATES);
  const start = performance.now();
  for (const [i, ws] of sockets.entries()) for (const message of messages[i]!) ws.send(message);
  await done;
  const ms = performance.now() - start;
  for (const ws of sockets) ws.terminate();
  await observer.close();
  return (UPDATES * 1000) / ms;
}

/** Builds a document of `UPDATES` inserts in a fresh room; returns the room. */
async function buildDocument(child: Child): Promise<string> {
  const room = nextRoom();
  const observer = connectDoc(child.url, room);
  await observer.whenSynced;
  const ws = await socket(child.url, room);
  const done = whenLength(observer.doc, UPDATES);
  for (const message of prepare(0, UPDATES)) ws.send(message);
  await done;
  ws.terminate();
  await observer.close();
  return room;
}

/** Milliseconds from `connectDoc` to `whenSynced` for a new client of `room`. */
async function syncTime(url: string, room: string): Promise<number> {
  const start = performance.now();
  const client = connectDoc(url, room);
  await client.whenSynced;
  const ms = performance.now() - start;
  if (textLength(client.doc) !== UPDATES) throw new Error("the client synced a partial document");
  await client.close();
  return ms;
}

function row(name: string, latencies: Latencies, total: number, ms: number): Row {
  const latency = latencies.summary();
  return { name, ops: (total * 1000) / ms, ...(latency && { latency }) };
}

async function syncSection(dir: string, log: Log): Promise<Section> {
  const rows: Row[] = [];
  for (const kind of ["cellar", "peer"] as const) {
    log(`workspaces: sync a new client, ${NAMES[kind]}`);
    const db = join(dir, `sync-${kind}.db`);
    const child = await startChild(kind, db);
    const room = await buildDocument(child);
    const latencies = new Latencies();
    let total = 0;
    for (let i = 0; i < SYNCS; i++) {
      const ms = await syncTime(child.url, room);
      latencies.add(ms);
      total += ms;
    }
    rows.push(row(`${NAMES[kind]}, document open`, latencies, SYNCS, total));
    if (kind !== "cellar") {
      await child.quit();
      continue;
    }
    log("workspaces: sync a new client of a document the server loads from the database");
    const stored = [room];
    while (stored.length < COLD_SYNCS) stored.push(await buildDocument(child));
    await child.quit();
    const restarted = await startChild(kind, db);
    // A first sync of another document warms the new process up; each figure is then one load.
    await syncTime(restarted.url, await buildDocument(restarted));
    const cold = new Latencies();
    let coldTotal = 0;
    for (const each of stored) {
      const ms = await syncTime(restarted.url, each);
      cold.add(ms);
      coldTotal += ms;
    }
    await restarted.quit();
    rows.push(row(`${NAMES[kind]}, loaded from the database`, cold, COLD_SYNCS, coldTotal));
  }
  return {
    title: `Workspaces: a new client syncs a document built from ${UPDATES.toLocaleString("en-US")} updates (ops = syncs)`,
    rows,
    baseline: null,
  };
}

async function throughputSections(dir: string, log: Log): Promise<Section[]> {
  const kinds = ["cellar", "cellar-memory", "peer"] as const;
  const sections: Section[] = [];
  for (const clients of CLIENT_COUNTS) {
    const start = load();
    const children = await Promise.all(
      kinds.map((kind) => startChild(kind, join(dir, `throughput-${clients}-${kind}.db`))),
    );
    log(`workspaces: ${UPDATES} updates from ${clients} clients, ${ROUNDS} rounds each`);
    const results = await interleave(
      children.map((child) => () => throughput(child, clients)),
      ROUNDS,
    );
    for (const child of children) await child.quit();
    sections.push({
      title: `Workspaces: ${UPDATES.toLocaleString("en-US")} one-character inserts from ${clients} clients through one server, every client receiving every insert (ops = updates)`,
      notes: [`load average ${start} → ${load()}; best of ${ROUNDS} rounds`],
      rows: kinds.map((kind, i) => ({
        name: NAMES[kind],
        ops: Math.max(...results[i]!),
        ...(kind === "peer" && { target: 1 }),
      })),
    });
  }
  return sections;
}

async function memorySection(dir: string, log: Log): Promise<Section> {
  const rows: Row[] = [];
  for (const kind of ["cellar", "peer"] as const) {
    log(`workspaces: memory per open document, ${NAMES[kind]}`);
    const child = await startChild(kind, join(dir, `memory-${kind}.db`));
    // A first document: what every document shares (modules, caches) is counted out.
    await fill(child, nextRoom());
    const before = await child.memory();
    for (let i = 0; i < MEMORY_DOCS; i++) await fill(child, nextRoom());
    const after = await child.memory();
    await child.quit();
    rows.push({ name: NAMES[kind], ops: (after - before) / MEMORY_DOCS / 1024 });
  }
  return {
    title: `Workspaces: memory per open document of ${MEMORY_UPDATES} updates, no client connected (figure = heap KiB per document, lower is better)`,
    rows,
    baseline: null,
  };
}

async function fill(child: Child, room: string): Promise<void> {
  const observer = connectDoc(child.url, room);
  await observer.whenSynced;
  const ws = await socket(child.url, room);
  const done = whenLength(observer.doc, MEMORY_UPDATES);
  for (const message of prepare(0, MEMORY_UPDATES)) ws.send(message);
  await done;
  ws.terminate();
  await observer.close();
}

export async function workspacesSections(log: Log): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-workspaces-"));
  try {
    return [
      ...(await throughputSections(dir, log)),
      await syncSection(dir, log),
      await memorySection(dir, log),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
