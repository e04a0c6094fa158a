/**
 * The operation seam on real databases (memory and a SQLite file): each public call is reported
 * under its name, with its namespace, keys and outcome, and an observer costs the operation
 * nothing when it throws.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KvError } from "../errors.js";
import { openKv } from "../open.js";
import type { Kv } from "./kv.js";
import type { KvOperation, KvOperationOutcome } from "./observe.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-observe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Seen {
  readonly op: string;
  readonly namespace: string | null;
  readonly keyCount: number;
  readonly keys: unknown[];
  outcome?: KvOperationOutcome;
}

/** Records what `kv`'s observers see; `seen` lists operations in the order they started. */
function record(kv: Kv): { seen: Seen[]; stop: () => void } {
  const seen: Seen[] = [];
  const stop = kv.observe((operation: KvOperation) => {
    const entry: Seen = {
      op: operation.op,
      namespace: operation.namespace,
      keyCount: operation.keyCount,
      keys: operation.keys(),
    };
    seen.push(entry);
    return (outcome) => {
      entry.outcome = outcome;
    };
  });
  return { seen, stop };
}

const summary = (seen: Seen[]) =>
  seen.map((s) => [s.op, s.outcome?.ok === true ? "ok" : (s.outcome?.code ?? "pending")]);

describe.each([
  ["memory", () => openKv()],
  ["sqlite", () => openKv(join(dir, `${Math.random().toString(36).slice(2)}.db`))],
])("operation observers on %s", (_name, open) => {
  let kv: Kv;
  beforeEach(async () => {
    kv = await open();
  });
  afterEach(async () => {
    await kv.close();
  });

  it("names each call by what it does", async () => {
    const { seen } = record(kv);
    await kv.set(["users", "ada"], 1);
    await kv.get(["users", "ada"]);
    await kv.getMany([["a"], ["b"]]);
    await kv.delete(["users", "ada"]);
    await kv.atomic().set(["a"], 1).set(["b"], 2).commit();
    await kv
      .atomic()
      .check({ key: ["a"], versionstamp: null })
      .set(["a"], 2)
      .commit();
    await kv.enqueue({ job: 1 });
    await kv.paginate({ prefix: ["users"] });
    await kv.count({ prefix: [] });
    await kv.history(["a"]);
    expect(summary(seen)).toEqual([
      ["set", "ok"],
      ["get", "ok"],
      ["getMany", "ok"],
      ["delete", "ok"],
      ["atomic", "ok"],
      ["atomic", "CHECK_FAILED"],
      ["enqueue", "ok"],
      ["list", "ok"],
      ["count", "ok"],
      ["history", "ok"],
    ]);
    const failed = seen[5]!.outcome!;
    expect(failed).toMatchObject({ ok: false, code: "CHECK_FAILED" });
    expect(failed.error).toBeUndefined();
    for (const s of seen) expect(s.outcome!.durationMs).toBeGreaterThanOrEqual(0);
  });

  it("reports namespace, key count and keys", async () => {
    const { seen } = record(kv);
    const tenant = kv.namespace("tenant-a");
    await tenant.set(["users", 42n], "x");
    await tenant.getMany([
      ["users", 42n],
      ["bytes", new Uint8Array([1, 2])],
    ]);
    await tenant.paginate({ prefix: ["users"] });
    await tenant.paginate({ start: ["a"], end: ["z"] });
    await tenant.queue("emails").enqueue("hi");
    expect(seen.map(({ op, namespace, keyCount }) => [op, namespace, keyCount])).toEqual([
      ["set", "tenant-a", 1],
      ["getMany", "tenant-a", 2],
      ["list", "tenant-a", 1],
      ["list", "tenant-a", 1],
      ["enqueue", "tenant-a", 1],
    ]);
    expect(seen.map((s) => s.keys)).toEqual([
      [["users", 42n]],
      [
        ["users", 42n],
        ["bytes", new Uint8Array([1, 2])],
      ],
      [{ prefix: ["users"] }],
      [{ start: ["a"], end: ["z"] }],
      [["emails"]],
    ]);
  });

  it("reports what a call threw, with its code", async () => {
    await kv.set(["text"], "not a number");
    const { seen } = record(kv);
    await expect(kv.atomic().sum(["text"], 1).commit()).rejects.toThrow(KvError);
    await expect(kv.queue("q").ack("no-such-token")).rejects.toThrow(KvError);
    expect(summary(seen)).toEqual([
      ["atomic", "INVALID_MUTATION"],
      ["ack", "INVALID_TOKEN"],
    ]);
    expect(seen[0]!.outcome!.error).toBeInstanceOf(KvError);
    // A lease that is gone is an answer of no, not a throw of the store's.
    expect(seen[1]!.outcome!.error).toBeUndefined();
  });

  it("reports an operation once it reaches the database, not a call refused before", async () => {
    const { seen } = record(kv);
    await expect(kv.set(["a"], "x".repeat(70_000))).rejects.toThrow(KvError);
    expect(seen).toEqual([]);
  });

  it("sees queue calls and a watch", async () => {
    const { seen } = record(kv);
    const queue = kv.queue("jobs");
    await queue.enqueue(1);
    const message = await queue.dequeue({ visibilityTimeout: 1000 });
    await queue.ack(message!.token);
    await queue.stats();
    const stream = kv.watch([["a"]]);
    const reader = stream.getReader();
    await reader.read();
    await reader.cancel();
    expect(seen.map((s) => s.op)).toEqual([
      "enqueue",
      "dequeue",
      "ack",
      "queueStats",
      "watch",
      "get",
    ]);
  });

  it("reports the synchronous point read as it happens", () => {
    const { seen } = record(kv);
    void kv.get(["a"]);
    // In-process drivers read at once: the operation has ended before get's promise settles.
    expect(summary(seen)).toEqual([["get", "ok"]]);
  });

  it("goes on when an observer throws, and stops calling a removed observer", async () => {
    const warning = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const stop = kv.observe(() => {
      throw new Error("observer bug");
    });
    await kv.set(["a"], 1);
    expect(warning).toHaveBeenCalledWith(expect.stringContaining("observer bug"));
    stop();
    const { seen, stop: stopRecording } = record(kv);
    await kv.set(["a"], 2);
    expect(warning).toHaveBeenCalledTimes(1);
    expect(seen).toHaveLength(1);
    stopRecording();
    await kv.set(["a"], 3);
    expect(seen).toHaveLength(1);
    warning.mockRestore();
  });

  it("observes every view of one database", async () => {
    const { seen } = record(kv.namespace("b"));
    await kv.set(["x"], 1);
    expect(seen.map((s) => [s.op, s.namespace])).toEqual([["set", ""]]);
  });
});
