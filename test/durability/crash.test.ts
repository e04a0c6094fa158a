/**
 * Crash durability of the SQLite driver with real processes: writers are SIGKILLed at random
 * moments, and every write they acknowledged must be in the file afterwards.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type KvEntry, KvU64, openKv } from "../../src/index.js";

type Kind = "set" | "sum";

interface Ack {
  readonly kind: Kind;
  readonly seq: number;
  readonly versionstamp: string;
}

/** What one writer process reported before it died. */
interface RunLog {
  readonly run: string;
  readonly begun: Map<string, Kind>;
  readonly acks: Ack[];
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

interface Writer {
  readonly child: ChildProcess;
  readonly log: RunLog;
  /** Lets the writer open the file; `ready` resolves once it has. */
  readonly go: () => void;
  readonly ready: Promise<void>;
  readonly exited: Promise<Exit>;
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WRITER = fileURLToPath(new URL("./writer.ts", import.meta.url));
const KILL_ROUNDS = 10;

let dir = "";
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cellar-crash-"));
});

afterEach(async () => {
  await Promise.all(children.splice(0).map(stop));
  rmSync(dir, { recursive: true, force: true });
});

/** Kills a writer a failed test left running, so that it stops touching the folder. */
function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("close", () => resolve());
    child.kill("SIGKILL");
  });
}

function entryId(kind: Kind, run: string, seq: number): string {
  return `${kind}/${run}/${seq}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function parseLine(log: RunLog, line: string): void {
  const [word, kind, seq, versionstamp] = line.split(" ");
  if (word === "ready") return;
  if ((kind !== "set" && kind !== "sum") || seq === undefined)
    throw new Error(`bad writer line: ${line}`);
  if (word === "begin") log.begun.set(entryId(kind, log.run, Number(seq)), kind);
  else if (word === "ack" && versionstamp !== undefined)
    log.acks.push({ kind, seq: Number(seq), versionstamp });
  else throw new Error(`bad writer line: ${line}`);
}

/** Calls `onLine` for every complete line; a line cut short by a kill was never reported. */
function onLines(stream: Readable, onLine: (line: string) => void): void {
  let pending = "";
  stream.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLine(line);
  });
}

function startWriter(path: string, run: string): Writer {
  const child = spawn(process.execPath, ["--import", "tsx", WRITER, path, run], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  // A writer that died before reading its go line is reported by `ready`, not by this pipe.
  child.stdin!.on("error", () => {});
  children.push(child);
  const log: RunLog = { run, begun: new Map(), acks: [] };
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const ready = new Promise<void>((resolve) => {
    onLines(child.stdout!, (line) => {
      if (line === "ready") resolve();
      parseLine(log, line);
    });
  });
  const exited = new Promise<Exit>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stderr }));
  });
  const failedEarly = exited.then(({ code }) => {
    throw new Error(`writer ${run} exited (code ${code}) before it was ready:\n${stderr}`);
  });
  const go = (): void => {
    child.stdin!.write("go\n");
  };
  return { child, log, go, ready: Promise.race([ready, failedEarly]), exited };
}

/** SIGKILLs a writer and waits for its last output; it must not have died on its own before. */
async function kill(writer: Writer): Promise<void> {
  writer.child.kill("SIGKILL");
  const { signal, code, stderr } = await writer.exited;
  expect(
    signal,
    `writer ${writer.log.run} exited with code ${code} before the kill:\n${stderr}`,
  ).toBe("SIGKILL");
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

interface Stored {
  readonly entries: Map<string, KvEntry<unknown>>;
  readonly counter: KvEntry<unknown> | null;
}

async function readStore(path: string): Promise<Stored> {
  const kv = await openKv(path, { sweepInterval: 0 });
  try {
    const entries = new Map<string, KvEntry<unknown>>();
    for (const [prefix, kind] of [
      ["w", "set"],
      ["s", "sum"],
    ] as const) {
      for await (const entry of kv.list({ prefix: [prefix] })) {
        const [, run, seq] = entry.key;
        entries.set(entryId(kind, String(run), Number(seq)), entry);
      }
    }
    const counter = await kv.get(["counter"]);
    return { entries, counter: counter.versionstamp === null ? null : counter };
  } finally {
    await kv.close();
  }
}

function expectAcknowledgedPresent(stored: Stored, logs: readonly RunLog[]): void {
  for (const log of logs) {
    for (const ack of log.acks) {
      const entry = stored.entries.get(entryId(ack.kind, log.run, ack.seq));
      expect(entry, `acknowledged ${ack.kind} ${log.run}/${ack.seq} is missing`).toBeDefined();
      expect(entry!.versionstamp).toBe(ack.versionstamp);
      expect(entry!.value).toEqual({ run: log.run, seq: ack.seq });
    }
  }
}

function expectNoPhantoms(stored: Stored, logs: readonly RunLog[]): void {
  const begun = new Set(logs.flatMap((log) => [...log.begun.keys()]));
  for (const id of stored.entries.keys())
    expect(begun.has(id), `${id} was never written`).toBe(true);
}

/**
 * Each sum commit adds 1 to the counter and sets its own marker key atomically, so the counter
 * equals the number of markers exactly. A kill can land after a commit is durable but before
 * its acknowledgement is printed, so the counter lies between the acknowledged sums and those
 * plus, for every run, the sums it began but never acknowledged.
 */
function expectCounter(stored: Stored, logs: readonly RunLog[]): void {
  const markers = [...stored.entries.keys()].filter((id) => id.startsWith("sum/")).length;
  const acked = logs.reduce((n, log) => n + log.acks.filter((a) => a.kind === "sum").length, 0);
  const begun = logs.reduce(
    (n, log) => n + [...log.begun.values()].filter((k) => k === "sum").length,
    0,
  );
  const inFlight = begun - acked;
  const counter = stored.counter?.value ?? new KvU64(0n);
  expect(counter).toBeInstanceOf(KvU64);
  const value = Number((counter as KvU64).value);
  expect(value).toBe(markers);
  expect(value).toBeGreaterThanOrEqual(acked);
  expect(value).toBeLessThanOrEqual(acked + inFlight);
}

function expectDistinctVersionstamps(stored: Stored): void {
  const stamps = [...stored.entries.values()].map((e) => e.versionstamp);
  expect(new Set(stamps).size).toBe(stamps.length);
  for (const stamp of stamps) expect(stamp).toMatch(/^[0-9a-f]{20}$/);
  if (stored.counter === null) return;
  // The counter was last written by the newest sum commit, together with that commit's marker.
  const newestMarker = [...stored.entries]
    .filter(([id]) => id.startsWith("sum/"))
    .map(([, e]) => e.versionstamp)
    .sort()
    .at(-1);
  expect(stored.counter.versionstamp).toBe(newestMarker);
}

function expectIncreasingWithinRun(log: RunLog): void {
  for (let i = 1; i < log.acks.length; i++) {
    expect(log.acks[i]!.versionstamp > log.acks[i - 1]!.versionstamp).toBe(true);
  }
}

function expectSqliteIntact(path: string): void {
  const db = new Database(path);
  try {
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    const version = db
      .prepare("SELECT value FROM cellar_meta WHERE name = 'version'")
      .pluck()
      .get() as number;
    const newest = db.prepare("SELECT max(vs) FROM cellar_kv").pluck().get() as number | null;
    expect(version).toBeGreaterThanOrEqual(newest ?? 0);
  } finally {
    db.close();
  }
}

async function verify(path: string, logs: readonly RunLog[]): Promise<void> {
  const stored = await readStore(path);
  expectAcknowledgedPresent(stored, logs);
  expectNoPhantoms(stored, logs);
  expectCounter(stored, logs);
  expectDistinctVersionstamps(stored);
  for (const log of logs) expectIncreasingWithinRun(log);
  expectSqliteIntact(path);
}

function versionRange(log: RunLog): { first: string; last: string } {
  const stamps = log.acks.map((a) => a.versionstamp);
  return { first: stamps[0] ?? "", last: stamps.at(-1) ?? "" };
}

describe("SQLite durability under SIGKILL", () => {
  it("keeps every acknowledged write across repeated kills of one writer", async () => {
    const path = join(dir, "crash.db");
    const logs: RunLog[] = [];
    let next = startWriter(path, "r0");
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const writer = next;
      writer.go();
      await writer.ready;
      if (round + 1 < KILL_ROUNDS) next = startWriter(path, `r${round + 1}`);
      await sleep(50 + Math.random() * 350);
      await kill(writer);
      logs.push(writer.log);
    }
    expect(logs.reduce((n, log) => n + log.acks.length, 0)).toBeGreaterThan(0);
    await verify(path, logs);
    for (let i = 1; i < logs.length; i++) {
      const before = versionRange(logs[i - 1]!).last;
      const after = versionRange(logs[i]!).first;
      if (before !== "" && after !== "") expect(after > before).toBe(true);
    }
  });

  it("lets two processes write the same file at once without losing or repeating", async () => {
    const path = join(dir, "shared.db");
    const writers = [startWriter(path, "a"), startWriter(path, "b")];
    for (const writer of writers) writer.go();
    await Promise.all(writers.map((w) => w.ready));
    const base = writers.map((w) => w.log.acks.length);
    // SQLite's write lock is not fair: one process can hold it for a while. Run until each has
    // committed 50 times and each has committed after the other's first commit.
    const interleaved = () => {
      const [a, b] = writers.map((w) => versionRange(w.log));
      return a!.first !== "" && b!.first !== "" && a!.first < b!.last && b!.first < a!.last;
    };
    await waitFor(
      () => writers.every((w, i) => w.log.acks.length >= base[i]! + 50) && interleaved(),
      15_000,
    );
    for (const writer of writers) await kill(writer);
    const logs = writers.map((w) => w.log);
    await verify(path, logs);
    const stamps = logs.flatMap((log) => log.acks.map((a) => a.versionstamp));
    expect(new Set(stamps).size).toBe(stamps.length);
    const [a, b] = logs.map(versionRange);
    // Overlapping ranges: each process committed while the other was committing too.
    expect(a!.first < b!.last && b!.first < a!.last).toBe(true);
  });
});
