/**
 * Child process for the durability tests: `writer.ts <db-path> <run-id>` opens the file once it
 * reads a `go` line on stdin, then writes until it is killed, and reports on stdout, one line
 * each:
 *
 * - `ready` once the database is open;
 * - `begin <kind> <seq>` before a write is issued;
 * - `ack <kind> <seq> <versionstamp>` after its promise resolved.
 *
 * `kind` is `set` for `["w", run, seq]` or `sum` for an atomic commit that adds 1 to
 * `["counter"]` and sets `["s", run, seq]`. Every key is written once.
 */
import { writeSync } from "node:fs";
import { createInterface } from "node:readline";
import { type Kv, KvU64, openKv } from "../../src/index.js";

type Kind = "set" | "sum";

const { path, run } = parseArgs(process.argv.slice(2));

let seq = 0;

function parseArgs(args: string[]): { path: string; run: string } {
  const [path, run] = args;
  if (path === undefined || run === undefined) {
    process.stderr.write("usage: writer.ts <db-path> <run-id>\n");
    process.exit(2);
  }
  return { path, run };
}

// process.stdout queues a line in memory when the pipe is full, and a kill then drops it: a
// `begin` line could be lost after its write committed. A synchronous write cannot be.
function emit(line: string): void {
  const bytes = Buffer.from(`${line}\n`);
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(1, bytes, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
    }
  }
}

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

async function tracked(kind: Kind, write: (seq: number) => Promise<string>): Promise<void> {
  const n = seq++;
  emit(`begin ${kind} ${n}`);
  const versionstamp = await write(n);
  emit(`ack ${kind} ${n} ${versionstamp}`);
}

function setOne(kv: Kv, n: number): Promise<string> {
  return kv.set(["w", run, n], { run, seq: n }).then((res) => res.versionstamp);
}

async function sumOne(kv: Kv, n: number): Promise<string> {
  const res = await kv
    .atomic()
    .sum(["counter"], new KvU64(1n))
    .set(["s", run, n], { run, seq: n })
    .commit();
  if (!res.ok) throw new Error(`atomic commit without checks failed (seq ${n})`);
  return res.versionstamp;
}

async function burst(kind: Kind, kv: Kv, size: number): Promise<void> {
  const write = kind === "set" ? setOne : sumOne;
  await Promise.all(Array.from({ length: size }, () => tracked(kind, (n) => write(kv, n))));
}

async function step(kv: Kv): Promise<void> {
  const r = Math.random();
  if (r < 0.35) await tracked("set", (n) => setOne(kv, n));
  else if (r < 0.65) await burst("set", kv, randomInt(2, 8));
  else await burst("sum", kv, randomInt(1, 3));
}

// Starting a process costs more than a crash round: the parent boots the next writer while the
// current one runs, and releases it only once the file is its alone.
async function released(): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) if (line === "go") return;
  throw new Error("stdin closed before go");
}

async function main(): Promise<void> {
  await released();
  const kv = await openKv(path, { durability: "full" });
  emit("ready");
  for (;;) await step(kv);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
