/**
 * The logging and metrics layers on real databases: pino writes its JSON lines to a destination
 * the test reads, prom-client's registry is read as Prometheus text and as JSON.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import {
  createLogger,
  logLevelFromEnv,
  metricsRegistry,
  runInRequest,
  withLogging,
  withMetrics,
} from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-layers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sqliteFile = () => join(dir, `${Math.random().toString(36).slice(2)}.db`);

/** A pino destination that keeps each line it is given, parsed. */
function lines(): {
  write(line: string): void;
  raw: string[];
  parsed(): Record<string, unknown>[];
} {
  const raw: string[] = [];
  return {
    write: (line) => {
      raw.push(line);
    },
    raw,
    parsed: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const opened: Kv[] = [];
afterEach(async () => {
  for (const kv of opened.splice(0)) await kv.close();
});
async function open(path?: string): Promise<Kv> {
  const kv = await openKv(path);
  opened.push(kv);
  return kv;
}

describe("withLogging", () => {
  it("writes one line per operation at debug, without keys or values", async () => {
    const out = lines();
    const kv = withLogging(await open(sqliteFile()), { level: "debug", destination: out });
    await kv.namespace("tenant").set(["users", "ada-secret-key"], { name: "value-secret" });
    await kv
      .atomic()
      .check({ key: ["x"], versionstamp: "00000000000000010000" })
      .commit();
    expect(out.parsed()).toMatchObject([
      {
        level: 20,
        name: "cellar",
        msg: "operation",
        op: "set",
        namespace: "tenant",
        keyCount: 1,
        outcome: "ok",
      },
      { op: "atomic", namespace: "", keyCount: 0, outcome: "refused", code: "CHECK_FAILED" },
    ]);
    expect(typeof out.parsed()[0]!.durationMs).toBe("number");
    expect(out.raw.join("")).not.toMatch(/secret/);
  });

  it("writes keys, and what a call threw, when asked", async () => {
    const out = lines();
    const kv = withLogging(await open(), { level: "debug", destination: out, keys: true });
    await kv.set(["users", 1n, new Uint8Array([255])], "v");
    await kv.paginate({ prefix: ["users"] });
    await kv.set(["n"], "text");
    await expect(kv.atomic().sum(["n"], 1).commit()).rejects.toThrow();
    const [set, list, , sum] = out.parsed();
    expect(set!.keys).toEqual([["users", { $bigint: "1" }, { $bytes: "_w" }]]);
    expect(list!.keys).toEqual([{ prefix: ["users"] }]);
    expect(sum).toMatchObject({ op: "atomic", outcome: "error", code: "INVALID_MUTATION" });
    expect(sum!.error).toMatch(/sum/);
  });

  it("writes no operation line at info, and carries a request's id", async () => {
    const out = lines();
    const logger = createLogger({ level: "info", destination: out });
    const kv = withLogging(await open(), { logger });
    await kv.set(["a"], 1);
    expect(out.raw).toEqual([]);
    logger.level = "debug";
    await runInRequest({ requestId: "req-42" }, () => kv.get(["a"]));
    expect(out.parsed()).toMatchObject([{ op: "get", requestId: "req-42" }]);
  });

  it("takes its level from CELLAR_LOG_LEVEL and refuses a level that is none", () => {
    expect(logLevelFromEnv({})).toBe("info");
    expect(logLevelFromEnv({ CELLAR_LOG_LEVEL: "debug" })).toBe("debug");
    expect(() => logLevelFromEnv({ CELLAR_LOG_LEVEL: "verbose" })).toThrow(/CELLAR_LOG_LEVEL/);
  });
});

/** The value of `name` with exactly `labels` in the registry's JSON, or undefined. */
async function metricValue(
  kv: Kv,
  name: string,
  labels: Record<string, string | number> = {},
): Promise<number | undefined> {
  const metrics = await metricsRegistry(kv)!.getMetricsAsJSON();
  const metric = metrics.find((m) => m.name === name);
  const found = metric?.values.find(
    (v) =>
      Object.keys(labels).every((label) => v.labels[label] === labels[label]) &&
      (v as { metricName?: string }).metricName === undefined,
  );
  return found?.value;
}

describe("withMetrics", () => {
  it("counts operations by name and outcome, errors by code, and times them", async () => {
    const kv = withMetrics(await open(sqliteFile()), { defaultMetrics: false });
    await kv.set(["a"], 1);
    await kv.set(["b"], 2);
    await kv.get(["a"]);
    await kv
      .atomic()
      .check({ key: ["a"], versionstamp: null })
      .set(["a"], 3)
      .commit();
    await kv.set(["text"], "x");
    await expect(kv.atomic().sum(["text"], 1).commit()).rejects.toThrow();
    expect(await metricValue(kv, "cellar_operations_total", { op: "set", outcome: "ok" })).toBe(3);
    expect(await metricValue(kv, "cellar_operations_total", { op: "get", outcome: "ok" })).toBe(1);
    expect(
      await metricValue(kv, "cellar_operations_total", { op: "atomic", outcome: "refused" }),
    ).toBe(1);
    expect(
      await metricValue(kv, "cellar_operations_total", { op: "atomic", outcome: "error" }),
    ).toBe(1);
    expect(
      await metricValue(kv, "cellar_errors_total", { op: "atomic", code: "INVALID_MUTATION" }),
    ).toBe(1);
    const text = await metricsRegistry(kv)!.metrics();
    expect(text).toContain('cellar_operation_duration_seconds_count{op="set"} 3');
    expect(text).toMatch(/# TYPE cellar_operations_total counter/);
  });

  it("reports group commit sizes, watchers, queues, totals and the latest commit", async () => {
    const kv = withMetrics(await open(sqliteFile()), { defaultMetrics: false });
    await Promise.all(Array.from({ length: 20 }, (_, i) => kv.set(["k", i], "v".repeat(10))));
    await kv.namespace("t").queue("emails").enqueue("hello", { delay: 60_000 });
    await kv.queue("jobs").enqueue(1);
    const reader = kv.watch([["k", 0]]).getReader();
    await reader.read();
    const text = await metricsRegistry(kv)!.metrics();
    // The twenty sets of one tick are one group.
    expect(text).toMatch(/cellar_commit_batch_size_bucket\{le="32"\} [1-9]/);
    expect(text).toMatch(/cellar_commit_batch_size_sum \d+/);
    expect(await metricValue(kv, "cellar_watchers")).toBe(1);
    expect(await metricValue(kv, "cellar_subscribers", { kind: "keys" })).toBe(1);
    expect(
      await metricValue(kv, "cellar_queue_messages", {
        namespace: "t",
        queue: "emails",
        state: "delayed",
      }),
    ).toBe(1);
    expect(
      await metricValue(kv, "cellar_queue_messages", {
        namespace: "",
        queue: "jobs",
        state: "pending",
      }),
    ).toBe(1);
    expect(await metricValue(kv, "cellar_entries")).toBe(20);
    expect(await metricValue(kv, "cellar_stored_bytes")).toBeGreaterThan(20 * 10);
    expect(await metricValue(kv, "cellar_change_log_head_versionstamp")).toBeGreaterThanOrEqual(22);
    await reader.cancel();
    expect(await metricValue(kv, "cellar_watchers")).toBe(0);
  });

  it("reuses storage totals for maxAgeMs", async () => {
    const kv = withMetrics(await open(), { defaultMetrics: false, storage: { maxAgeMs: 60_000 } });
    await kv.set(["a"], 1);
    expect(await metricValue(kv, "cellar_entries")).toBe(1);
    await kv.set(["b"], 1);
    expect(await metricValue(kv, "cellar_entries")).toBe(1);
  });

  it("keeps one registry per database, and composes with logging", async () => {
    const out = lines();
    const a = withMetrics(withLogging(await open(), { level: "debug", destination: out }));
    const b = withMetrics(await open(), { defaultMetrics: false });
    expect(withMetrics(a)).toBe(a);
    expect(metricsRegistry(a)).not.toBe(metricsRegistry(b));
    expect(metricsRegistry(a.namespace("x"))).toBe(metricsRegistry(a));
    await a.set(["x"], 1);
    expect(await metricValue(a, "cellar_operations_total", { op: "set", outcome: "ok" })).toBe(1);
    expect(
      await metricValue(b, "cellar_operations_total", { op: "set", outcome: "ok" }),
    ).toBeUndefined();
    expect(out.parsed().map((line) => line.op)).toContain("set");
    expect(await metricsRegistry(a)!.metrics()).toContain("process_cpu_user_seconds_total");
  });
});
