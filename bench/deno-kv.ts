/**
 * @deno/kv on a SQLite file. Its native backend can busy-loop forever inside `list` after
 * ordinary writes, so the measurements run in a child process that is killed when it stalls.
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { measure, type Ops } from "./harness.js";
import { awaited, BURST, bursts, KEYS, LIST_LIMIT, PREFIX, populate, writer } from "./workload.js";

const SCENARIOS = ["get", "set", "burst", "list"] as const;
type Scenario = (typeof SCENARIOS)[number];
export type DenoKvOps = Record<Scenario, Ops>;

type Message = { step: Scenario } | { scenario: Scenario; ops: number };

/**
 * Runs every @deno/kv scenario in a child process. A scenario that sends nothing for `stallMs`
 * is "hung" and the child is killed; scenarios that never ran are "n/a".
 */
export function denoKvBench(log: (step: string) => void, stallMs = 30_000): Promise<DenoKvOps> {
  const dir = mkdtempSync(join(tmpdir(), "cellar-bench-deno-"));
  const results: Partial<DenoKvOps> = {};
  let current: Scenario | null = null;
  return new Promise((resolve) => {
    // fork() reuses this process's flags, so the child loads TypeScript the same way.
    const child = fork(fileURLToPath(import.meta.url), ["--child", dir]);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      resolve(Object.fromEntries(SCENARIOS.map((s) => [s, results[s] ?? "n/a"])) as DenoKvOps);
    };
    const stalled = () => {
      if (current !== null && results[current] === undefined) results[current] = "hung";
      log(`@deno/kv: ${current ?? "setup"} hung after ${stallMs / 1000} s; killed`);
      child.kill("SIGKILL");
    };
    let timer = setTimeout(stalled, stallMs);
    child.on("message", (message: Message) => {
      clearTimeout(timer);
      timer = setTimeout(stalled, stallMs);
      if ("step" in message) {
        current = message.step;
        log(`@deno/kv: ${message.step}`);
      } else {
        results[message.scenario] = message.ops;
      }
    });
    child.on("error", settle);
    child.on("exit", settle);
  });
}

async function child(dir: string): Promise<void> {
  const { openKv } = await import("@deno/kv");
  // Resolves once the message is handed over, so exiting afterwards cannot drop it.
  const send = (message: Message) =>
    new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));
  const kv = await openKv(join(dir, "deno.db"));
  await populate((key, value) => kv.set(key, value));
  const run = async (scenario: Scenario, ops: () => Promise<number>) => {
    await send({ step: scenario });
    await send({ scenario, ops: await ops() });
  };
  const set = writer((key, value) => kv.set(key, value));
  await run("get", () => measure(awaited((i) => kv.get(KEYS[i]!))));
  await run("set", () => measure(awaited(set)));
  await run("burst", () => measure(bursts(set), { opsPerCall: BURST }));
  await run("list", () =>
    measure(
      awaited(async () => {
        let n = 0;
        for await (const _ of kv.list({ prefix: PREFIX }, { limit: LIST_LIMIT })) n++;
        if (n !== LIST_LIMIT) throw new Error(`a list read ${n} entries, expected ${LIST_LIMIT}`);
      }),
    ),
  );
  kv.close();
}

if (process.argv[2] === "--child") {
  await child(process.argv[3]!);
  process.exit(0);
}
