/**
 * Differential test against Deno KV itself: random operation sequences run on Cellar and on
 * `@deno/kv` 0.14 (Deno KV's SQLite backend for Node), comparing what both promise: values,
 * list contents and order, check outcomes, sum/min/max results, counts, and the order relations
 * of versionstamps. `@deno/kv` runs in a child process because its list can spin forever; a
 * sequence that stops answering is compared up to the last step it finished.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { inspect, isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, it } from "vitest";
import { type Kv, KvU64, openKv } from "../../src/index.js";
import {
  type Fact,
  type OracleKv,
  runOps,
  toWireKey,
  type WireKey,
  type WireMutation,
  type WireOp,
  type WireRef,
  type WireSelector,
  type WireValue,
} from "./deno-kv-child.js";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "deno-kv-child.ts");
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const STARTUP_MS = 30_000;
/** Longer than any step takes when `@deno/kv` answers at all. */
const STALL_MS = 1_500;
const MAX_U64 = (1n << 64n) - 1n;

// -0 stays out of keys: `@deno/kv` 0.14 encodes it as 0, where Deno KV keeps it apart. Empty keys
// stay out too: Deno KV refuses them, Cellar accepts them.

const part = fc.constantFrom(
  ...toWireKey([
    "a",
    "b",
    "",
    "a\0",
    "é😀",
    0,
    1,
    -1.5,
    Infinity,
    -Infinity,
    Number.NaN,
    0n,
    1n,
    -1n,
    1n << 70n,
    -(1n << 70n),
    true,
    false,
    new Uint8Array(),
    Uint8Array.of(0),
    Uint8Array.of(1, 2),
  ]),
);

const hotKeys = [
  ["a"],
  ["b"],
  ["a", "x"],
  ["a", 1n],
  ["a", "x", true],
  ["b", 0],
  [1n],
  [Uint8Array.of(0)],
];
const hotPrefixes = [[], ["a"], ["b"], ["a", "x"], ["c"]];

const key: fc.Arbitrary<WireKey> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...hotKeys.map(toWireKey)) },
  { weight: 1, arbitrary: fc.array(part, { minLength: 1, maxLength: 3 }) },
);
/** Keys only sum/min/max and KvU64 writes touch, so that those mutations never meet another type. */
const counterKey = fc.constantFrom(...[["c"], ["c", 1n], ["a", "c"]].map(toWireKey));
const prefix: fc.Arbitrary<WireKey> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...hotPrefixes.map(toWireKey)) },
  { weight: 1, arbitrary: fc.array(part, { maxLength: 2 }) },
);
const inside = (p: WireKey) =>
  fc.array(part, { minLength: 1, maxLength: 2 }).map((tail): WireKey => [...p, ...tail]);

const selector: fc.Arbitrary<WireSelector> = fc.oneof(
  { weight: 3, arbitrary: prefix.map((p) => ({ prefix: p })) },
  { weight: 2, arbitrary: prefix.chain((p) => inside(p).map((start) => ({ prefix: p, start }))) },
  { weight: 2, arbitrary: prefix.chain((p) => inside(p).map((end) => ({ prefix: p, end }))) },
  { weight: 1, arbitrary: fc.tuple(prefix, key).map(([p, start]) => ({ prefix: p, start })) },
  { weight: 3, arbitrary: fc.tuple(prefix, prefix).map(([start, end]) => ({ start, end })) },
);

const u64 = fc
  .oneof(
    fc.bigInt({ min: 0n, max: 5n }),
    fc.constantFrom(MAX_U64, MAX_U64 - 1n),
    fc.bigInt({ min: 0n, max: MAX_U64 }),
  )
  .map((n) => n.toString());

const value: fc.Arbitrary<WireValue> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v): WireValue => ["json", v]) },
  { weight: 2, arbitrary: u64.map((n): WireValue => ["u64", n]) },
);

const ref: fc.Arbitrary<WireRef> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ kind: "null" as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: "fresh" as const }) },
  { weight: 2, arbitrary: fc.nat(40).map((index) => ({ kind: "seen" as const, index })) },
  { weight: 1, arbitrary: fc.constant({ kind: "bogus" as const }) },
);

const numeric = fc.constantFrom("sum" as const, "min" as const, "max" as const);

const mutation: fc.Arbitrary<WireMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ type: fc.constant("set" as const), key, value }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant("set" as const),
      key: counterKey,
      value: u64.map((n): WireValue => ["u64", n]),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant("delete" as const), key: fc.oneof(key, counterKey) }),
  },
  { weight: 3, arbitrary: fc.record({ type: numeric, key: counterKey, n: u64 }) },
);

// `@deno/kv` 0.14 keeps the mutations before one that fails (a sum on a non-KvU64 value) although
// the commit throws; a mutation that can fail is therefore the only one of its atomic operation.
const mayFail: fc.Arbitrary<WireMutation[]> = fc
  .record({ type: numeric, key, n: u64 })
  .map((m) => [m]);

// A limit or batch size of 1 over a prefix whose own key exists sends `@deno/kv` into its endless
// loop; keep them possible but rare so that most sequences run to the end.
const limit = fc.oneof(
  { weight: 1, arbitrary: fc.constant(1) },
  { weight: 6, arbitrary: fc.integer({ min: 2, max: 6 }) },
);
const batchSize = fc.oneof(
  { weight: 1, arbitrary: fc.constant(1) },
  { weight: 6, arbitrary: fc.integer({ min: 2, max: 5 }) },
);

const op: fc.Arbitrary<WireOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("set" as const), key, value }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("set" as const),
      key: counterKey,
      value: u64.map((n): WireValue => ["u64", n]),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("get" as const), key: fc.oneof(key, counterKey) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("getMany" as const),
      keys: fc.array(key, { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("atomic" as const),
      checks: fc.array(fc.record({ key, ref }), { maxLength: 2 }),
      mutations: fc.oneof(
        { weight: 4, arbitrary: fc.array(mutation, { maxLength: 4 }) },
        { weight: 1, arbitrary: mayFail },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record(
      { op: fc.constant("list" as const), selector, limit, reverse: fc.boolean(), batchSize },
      { requiredKeys: ["op", "selector", "reverse"] },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("resume" as const),
      selector,
      limit,
      reverse: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("count" as const), selector }) },
);

const FINAL_LIST: WireOp = { op: "list", selector: { prefix: [] }, reverse: false };

const sequence = fc
  .array(op, { minLength: 1, maxLength: 20, size: "max" })
  .map((ops) => [...ops, FINAL_LIST]);

type Message =
  | { ready: true }
  | { step: number; facts: Fact[] }
  | { done: true }
  | { fatal: string };

class DenoProcess {
  readonly #child: ChildProcess;
  readonly #queue: Message[] = [];
  #wake: (() => void) | null = null;
  #stderr = "";

  constructor() {
    this.#child = spawn(process.execPath, ["--import", "tsx", CHILD, dir], {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, RUST_BACKTRACE: "0", RUST_LIB_BACKTRACE: "0" },
    });
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      this.#queue.push(JSON.parse(line) as Message);
      this.#wake?.();
    });
    this.#child.stderr!.on("data", (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000);
    });
    this.#child.on("exit", () => this.#wake?.());
  }

  get stderr(): string {
    return this.#stderr;
  }

  get exited(): boolean {
    return this.#child.exitCode !== null || this.#child.signalCode !== null;
  }

  /** The next message, or null when none arrives within `ms` (or the child is gone). */
  async next(ms: number): Promise<Message | null> {
    if (this.#queue.length === 0 && !this.exited) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
    return this.#queue.shift() ?? null;
  }

  send(ops: readonly WireOp[]): void {
    this.#child.stdin!.write(`${JSON.stringify({ ops })}\n`);
  }

  kill(): void {
    this.#child.kill("SIGKILL");
  }
}

/** Runs sequences on `@deno/kv`, replacing the child when it stops answering. */
class DenoOracle {
  #current: Promise<DenoProcess> = DenoOracle.#start();
  #spare: Promise<DenoProcess> | null = null;

  static async #start(): Promise<DenoProcess> {
    const child = new DenoProcess();
    const first = await child.next(STARTUP_MS);
    if (first === null || !("ready" in first)) {
      child.kill();
      throw new Error(`the @deno/kv child did not start: ${inspect(first)}\n${child.stderr}`);
    }
    return child;
  }

  /** The facts of each step `@deno/kv` finished, and whether it stalled before the end. */
  async run(ops: readonly WireOp[]): Promise<{ results: Fact[][]; stalled: boolean }> {
    this.#spare ??= DenoOracle.#start();
    const child = await this.#current;
    child.send(ops);
    const results: Fact[][] = [];
    for (;;) {
      const message = await child.next(STALL_MS);
      if (message === null && child.exited) {
        throw new Error(`the @deno/kv child exited:\n${child.stderr}`);
      }
      if (message === null) {
        child.kill();
        this.#current = this.#spare;
        this.#spare = null;
        return { results, stalled: true };
      }
      if ("fatal" in message) throw new Error(`the @deno/kv child failed: ${message.fatal}`);
      if ("done" in message) return { results, stalled: false };
      if ("step" in message) results[message.step] = message.facts;
    }
  }

  async close(): Promise<void> {
    const children = this.#spare === null ? [this.#current] : [this.#current, this.#spare];
    for (const child of await Promise.allSettled(children)) {
      if (child.status === "fulfilled") child.value.kill();
    }
  }
}

function cellarAdapter(kv: Kv): OracleKv {
  return {
    get: (k) => kv.get(k),
    getMany: (keys) => kv.getMany(keys),
    set: (k, v) => kv.set(k, v),
    delete: (k) => kv.delete(k),
    list: (s, options) => kv.list(s, options),
    atomic: () => kv.atomic(),
    count: (s) => kv.count(s),
    u64: (n) => new KvU64(n),
    isU64: (v): v is KvU64 => v instanceof KvU64,
  };
}

async function runCellar(kv: Kv, ops: readonly WireOp[]): Promise<Fact[][]> {
  const results: Fact[][] = [];
  try {
    await runOps(cellarAdapter(kv), ops, (step, facts) => {
      results[step] = facts;
    });
  } finally {
    await kv.close();
  }
  return results;
}

/** Checks that one side's versionstamps relate to each other as the other side's do. */
class StampRelation {
  readonly #pairs: [string, string][] = [];

  add(cellar: string, deno: string): string | null {
    const order = (x: string, y: string) => (x === y ? 0 : x < y ? -1 : 1);
    for (const [c, d] of this.#pairs) {
      if (order(cellar, c) !== order(deno, d)) {
        return `Cellar orders ${cellar} ${order(cellar, c)} to ${c}, Deno KV orders ${deno} ${order(deno, d)} to ${d}`;
      }
    }
    this.#pairs.push([cellar, deno]);
    return null;
  }
}

function difference(cellar: Fact[], deno: Fact[], relation: StampRelation): string | null {
  if (cellar.length !== deno.length || cellar.some((f, i) => f[0] !== deno[i]![0]))
    return "the results have different shapes";
  for (let i = 0; i < cellar.length; i++) {
    const [kind, c] = cellar[i]!;
    const d = deno[i]![1];
    if (kind === "stamp" && typeof c === "string" && typeof d === "string") {
      const problem = relation.add(c, d);
      if (problem) return `fact ${i}: ${problem}`;
    } else if (!isDeepStrictEqual(c, d)) {
      return `fact ${i} (${kind}) differs`;
    }
  }
  return null;
}

const show = (x: unknown) => inspect(x, { depth: 8, breakLength: 160 });

function compareRuns(name: string, ops: readonly WireOp[], cellar: Fact[][], deno: Fact[][]): void {
  const relation = new StampRelation();
  for (let i = 0; i < deno.length; i++) {
    const problem = difference(cellar[i]!, deno[i]!, relation);
    if (problem) {
      throw new Error(
        `step ${i} ${show(ops[i])}: ${problem}\n  ${name}: ${show(cellar[i])}\n  deno-kv: ${show(deno[i])}`,
      );
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), "cellar-oracle-"));
let oracle: DenoOracle;
let files = 0;
let sequences = 0;
const stalls: { steps: number; finished: number }[] = [];

beforeAll(() => {
  oracle = new DenoOracle();
});

afterAll(async () => {
  await oracle.close();
  rmSync(dir, { recursive: true, force: true });
  const where = stalls.map((s) => `${s.finished}/${s.steps}`).join(", ");
  console.info(
    `@deno/kv stopped answering in ${stalls.length} of ${sequences} sequence(s)` +
      (stalls.length > 0 ? `; steps compared before it did: ${where}` : ""),
  );
});

describe("Cellar against Deno KV (@deno/kv 0.14)", () => {
  it("gives the same observable results for random operation sequences", {
    timeout: 120_000,
  }, async () => {
    await fc.assert(
      fc.asyncProperty(sequence, async (ops) => {
        sequences++;
        const deno = await oracle.run(ops);
        if (deno.stalled) stalls.push({ steps: ops.length, finished: deno.results.length });
        compareRuns("cellar (memory)", ops, await runCellar(await openKv(), ops), deno.results);
        compareRuns(
          "cellar (sqlite)",
          ops,
          await runCellar(await openKv(join(dir, `oracle-${files++}.db`)), ops),
          deno.results,
        );
      }),
      { numRuns: 50 },
    );
  });
});
