import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, Worker } from "bullmq";
import { openKv } from "../src/index.js";
import { interleave, Latencies, type Latency, load, type Row, type Section } from "./harness.js";
import { connectRedis, deleteKeys, REDIS, REDIS_SKIPPED } from "./redis.js";
import { BURST, ENTRIES, type User, VALUES } from "./workload.js";

export const JOBS = 10_000;
export const CONCURRENCY = 50;
export const PACED_RATE = 500;
const PACED_JOBS = 1000;
const ROUNDS = 3;
/** How long the dequeueMany loop sleeps when the queue is empty. */
export const POLL_MS = 5;
const STALL_MS = 60_000;
const BULL_QUEUE = `cellar-bench-${process.pid}`;
const BULL_NAME = "BullMQ (Redis), Worker";

/** A job carries the moment it was enqueued, so that its handler can tell its latency. */
export interface Job {
  readonly at: number;
  readonly user: User;
}

export interface Consumer {
  /** Begins handing jobs to the handler. */
  start(): void;
  /** Stops taking jobs; resolves once running handlers are done. */
  stop(): Promise<void>;
}

/** A queue under test. `consumer` gets ready (connections…) without taking jobs yet. */
export interface Subject {
  readonly name: string;
  enqueue(job: Job): Promise<unknown>;
  consumer(handle: (job: Job) => void): Promise<Consumer>;
  close(): Promise<void>;
}

const job = (i: number): Job => ({ at: performance.now(), user: VALUES[i % ENTRIES]! });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What users write first: `listen` with a concurrency. */
export async function cellarListen(path: string, durability: "full" | "normal"): Promise<Subject> {
  const kv = await openKv(path, { durability });
  const queue = kv.queue<Job>("bench");
  return {
    name: `Cellar, ${durability}, listen`,
    enqueue: (value) => queue.enqueue(value),
    consumer: async (handle) => {
      const abort = new AbortController();
      let listening: Promise<void> = Promise.resolve();
      return {
        start: () => {
          listening = queue.listen(handle, { concurrency: CONCURRENCY, signal: abort.signal });
        },
        stop: async () => {
          abort.abort();
          await listening;
        },
      };
    },
    close: () => kv.close(),
  };
}

/** A batch loop: lease up to CONCURRENCY jobs, handle and ack them together, repeat. */
export async function cellarLoop(path: string, durability: "full" | "normal"): Promise<Subject> {
  const kv = await openKv(path, { durability });
  const queue = kv.queue<Job>("bench");
  return {
    name: `Cellar, ${durability}, dequeueMany loop`,
    enqueue: (value) => queue.enqueue(value),
    consumer: async (handle) => {
      let stopped = false;
      let looping: Promise<void> = Promise.resolve();
      const loop = async () => {
        while (!stopped) {
          const messages = await queue.dequeueMany(CONCURRENCY);
          if (messages.length === 0) {
            await sleep(POLL_MS);
            continue;
          }
          await Promise.all(
            messages.map(async (message) => {
              handle(message.value);
              await queue.ack(message.token);
            }),
          );
        }
      };
      return {
        start: () => {
          looping = loop();
        },
        stop: async () => {
          stopped = true;
          await looping;
        },
      };
    },
    close: () => kv.close(),
  };
}

/** BullMQ as its documentation sets it up, finished jobs removed as Cellar's acks remove them. */
async function bullmq(): Promise<Subject> {
  const connection = { ...REDIS, maxRetriesPerRequest: null };
  const queue = new Queue<Job>(BULL_QUEUE, {
    connection,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  const report = (error: Error) => process.stderr.write(`BullMQ: ${error.message}\n`);
  queue.on("error", report);
  await queue.waitUntilReady();
  return {
    name: BULL_NAME,
    enqueue: (value) => queue.add("job", value),
    consumer: async (handle) => {
      const worker = new Worker<Job>(BULL_QUEUE, async (j) => handle(j.data), {
        connection,
        concurrency: CONCURRENCY,
        autorun: false,
      });
      worker.on("error", report);
      await worker.waitUntilReady();
      return {
        start: () => {
          // A worker that fails to run shows as a stall: the round then fails with a count.
          worker.run().catch(report);
        },
        stop: () => worker.close(),
      };
    },
    close: async () => {
      await queue.obliterate({ force: true });
      await queue.close();
    },
  };
}

/** Counts handled jobs and their latencies, and says when a given number has been handled. */
class Tracker {
  #handled = 0;
  #latencies = new Latencies();
  #waiter: { count: number; done: () => void } | null = null;

  readonly handle = (value: Job): void => {
    this.#latencies.add(performance.now() - value.at);
    this.#handled++;
    if (this.#waiter && this.#handled >= this.#waiter.count) this.#waiter.done();
  };

  reset(): void {
    this.#handled = 0;
    this.#latencies.reset();
  }

  latency(): Latency {
    return this.#latencies.summary()!;
  }

  /** Resolves once `count` jobs are handled; rejects if that takes longer than STALL_MS. */
  until(count: number, subject: string): Promise<void> {
    if (this.#handled >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(new Error(`${subject} handled ${this.#handled} of ${count} jobs in ${STALL_MS} ms`));
      }, STALL_MS);
      this.#waiter = {
        count,
        done: () => {
          clearTimeout(timer);
          this.#waiter = null;
          resolve();
        },
      };
    });
  }
}

/** Enqueues `JOBS` jobs, BURST at a time, each round awaited with `Promise.all`. */
async function enqueueAll(subject: Subject): Promise<void> {
  for (let start = 0; start < JOBS; start += BURST) {
    const writes: Promise<unknown>[] = [];
    for (let i = start; i < start + BURST; i++) writes.push(subject.enqueue(job(i)));
    await Promise.all(writes);
  }
}

/** Enqueues PACED_JOBS jobs at PACED_RATE per second, without waiting for one before the next. */
async function enqueuePaced(subject: Subject): Promise<void> {
  const start = performance.now();
  const writes: Promise<unknown>[] = [];
  for (let sent = 0; sent < PACED_JOBS; await sleep(1)) {
    const due = Math.ceil(((performance.now() - start) * PACED_RATE) / 1000);
    for (; sent < Math.min(due, PACED_JOBS); sent++) writes.push(subject.enqueue(job(sent)));
  }
  await Promise.all(writes);
}

interface Measured {
  readonly ops: number;
  readonly latency?: Latency;
}

/** One subject's figures from one round. */
export interface QueueRound {
  readonly enqueue: Measured;
  readonly drain: Measured;
  readonly flood: Measured;
  readonly paced: Measured;
}

const perSecond = (jobs: number, since: number) => (jobs * 1000) / (performance.now() - since);

/**
 * Enqueue-only, then drain with the consumer started, then enqueue with the consumer running,
 * then a paced trickle; the queue is empty again at the end.
 */
export async function queueRound(subject: Subject): Promise<QueueRound> {
  const tracker = new Tracker();
  const consumer = await subject.consumer(tracker.handle);
  try {
    let since = performance.now();
    await enqueueAll(subject);
    const enqueue = { ops: perSecond(JOBS, since) };
    since = performance.now();
    consumer.start();
    await tracker.until(JOBS, subject.name);
    const drain = { ops: perSecond(JOBS, since) };
    tracker.reset();
    since = performance.now();
    await enqueueAll(subject);
    await tracker.until(JOBS, subject.name);
    const flood = { ops: perSecond(JOBS, since), latency: tracker.latency() };
    tracker.reset();
    since = performance.now();
    await enqueuePaced(subject);
    await tracker.until(PACED_JOBS, subject.name);
    const paced = { ops: perSecond(PACED_JOBS, since), latency: tracker.latency() };
    return { enqueue, drain, flood, paced };
  } finally {
    await consumer.stop();
  }
}

type Phase = keyof QueueRound;

/** Throughput phases keep the fastest round; the paced phase keeps the round with the lowest median. */
function bestOf(rounds: readonly QueueRound[], phase: Phase): Measured {
  const better =
    phase === "paced"
      ? (a: Measured, b: Measured) => b.latency!.p50 < a.latency!.p50
      : (a: Measured, b: Measured) => b.ops > a.ops;
  return rounds.map((r) => r[phase]).reduce((a, b) => (better(a, b) ? b : a));
}

/** Cellar's queue on SQLite against BullMQ on the local Redis. */
export async function queueSections(log: (step: string) => void): Promise<Section[]> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-queue-"));
  const redis = await connectRedis();
  const subjects: Subject[] = [];
  try {
    const open = async (subject: Promise<Subject>) => {
      subjects.push(await subject);
      return subjects.at(-1)!;
    };
    const cellar = {
      full: [
        await open(cellarListen(join(dir, "full-listen.db"), "full")),
        await open(cellarLoop(join(dir, "full-loop.db"), "full")),
      ],
      normal: [
        await open(cellarListen(join(dir, "normal-listen.db"), "normal")),
        await open(cellarLoop(join(dir, "normal-loop.db"), "normal")),
      ],
    };
    const bull = redis ? await open(bullmq()) : null;
    const start = load();
    const runs = subjects.map((subject) => {
      let round = 0;
      return () => {
        log(`queue: ${subject.name}, round ${++round} of ${ROUNDS}, load ${load()}`);
        return queueRound(subject);
      };
    });
    const results = await interleave(runs, ROUNDS);
    const notes = [`load average ${start} → ${load()}`, ...(redis ? [] : [REDIS_SKIPPED])];
    const rounds = new Map(subjects.map((subject, i) => [subject, results[i]!]));
    return sections(cellar, bull, rounds, notes);
  } finally {
    for (const subject of subjects) await subject.close();
    rmSync(dir, { recursive: true, force: true });
    if (redis) {
      await deleteKeys(redis, `bull:${BULL_QUEUE}:*`);
      redis.disconnect();
    }
  }
}

function sections(
  cellar: Record<"full" | "normal", readonly Subject[]>,
  bull: Subject | null,
  rounds: ReadonlyMap<Subject, readonly QueueRound[]>,
  notes: readonly string[],
): Section[] {
  const row =
    (phase: Phase) =>
    (subject: Subject): Row => {
      const { ops, latency } = bestOf(rounds.get(subject)!, phase);
      return { name: subject.name, ops, ...(latency && { latency }) };
    };
  const bullRow = (phase: Phase, target?: number): Row => ({
    ...(bull ? row(phase)(bull) : { name: BULL_NAME, ops: "n/a" }),
    ...(target !== undefined && { target }),
  });
  const all = [...cellar.full, ...cellar.normal];
  const jobs = JOBS.toLocaleString("en-US");
  const flood = (durability: "full" | "normal"): Section => ({
    title: `Queue: enqueue → handle → ack, ${jobs} jobs, concurrency ${CONCURRENCY}, durability ${durability} (ops = jobs)`,
    notes,
    rows: [...cellar[durability].map(row("flood")), bullRow("flood", 1)],
  });
  return [
    {
      title: `Queue: enqueue only, ${jobs} jobs, ${BURST} at a time, no consumer (ops = jobs)`,
      notes,
      rows: [
        row("enqueue")(cellar.full[0]!),
        row("enqueue")(cellar.normal[0]!),
        bullRow("enqueue"),
      ],
    },
    flood("full"),
    flood("normal"),
    {
      title: `Queue: drain ${jobs} queued jobs, concurrency ${CONCURRENCY} (ops = jobs)`,
      notes,
      rows: [...all.map(row("drain")), bullRow("drain")],
    },
    {
      title: `Queue: latency at ${PACED_RATE} jobs/s offered (ops = jobs handled per second)`,
      notes,
      rows: [...all.map(row("paced")), bullRow("paced")],
    },
  ];
}
