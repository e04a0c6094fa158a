import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { openKv } from "../../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-queue-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("queues on a SQLite file", () => {
  it("keep messages, leases and dead letters across a restart", async () => {
    const path = join(dir, "restart.db");
    let now = 1_000_000;
    const clock = () => now;
    let kv = await openKv(path, { clock, sweepInterval: 0 });
    const q = kv.queue("jobs");
    for (let i = 0; i < 20; i++)
      await q.enqueue(i, { backoffSchedule: [0], delay: i < 5 ? 10_000 : 0 });
    for (const m of await q.dequeueMany(5)) await q.ack(m.token);
    await q.dequeueMany(3, { visibilityTimeout: 1000 });
    const doomed = (await q.dequeue())!;
    await q.nack(doomed.token);
    await q.nack((await q.dequeueMany(100)).find((m) => m.id === doomed.id)!.token);
    await kv.close();

    kv = await openKv(path, { clock, sweepInterval: 0 });
    const again = kv.queue("jobs");
    // 15 ready: 5 acked, 3 leased, 1 dead-lettered on its second delivery, 6 leased with it.
    expect(await again.stats()).toMatchObject({ dead: 1, delayed: 5, inFlight: 3 + 6, pending: 0 });
    expect((await again.dlq.list())[0]?.id).toBe(doomed.id);
    now += 30_000;
    const redelivered = await again.dequeueMany(100);
    expect(redelivered).toHaveLength(5 + 3 + 6);
    expect(redelivered.filter((m) => m.attempts === 2)).toHaveLength(9);
    await kv.close();
  });

  it("never gives one message to two worker processes", async () => {
    const path = join(dir, "workers.db");
    const kv = await openKv(path);
    const q = kv.queue("work");
    const total = 300;
    const script = fileURLToPath(new URL("./queue-worker.ts", import.meta.url));
    const workers: ChildProcess[] = [];
    const handled: string[][] = [[], []];
    for (const [i, lines] of handled.entries()) {
      const child = spawn(process.execPath, ["--import", "tsx", script, path], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      workers.push(child);
      let buffer = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        buffer += chunk.toString();
        const parts = buffer.split("\n");
        buffer = parts.pop()!;
        lines.push(...parts.filter((line) => line !== "ready"));
      });
      await once(child.stdout!, "data");
      expect(i).toBeLessThan(2);
    }
    const ids = new Set<string>();
    for (let i = 0; i < total; i += 50) {
      const results = await Promise.all(Array.from({ length: 50 }, (_, j) => q.enqueue(i + j)));
      for (const r of results) ids.add(r.id);
    }
    for (let i = 0; i < 600 && handled[0]!.length + handled[1]!.length < total; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const child of workers) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    const all = [...handled[0]!, ...handled[1]!];
    expect(all).toHaveLength(total);
    expect(new Set(all)).toEqual(ids);
    expect(handled[0]!.length).toBeGreaterThan(0);
    expect(handled[1]!.length).toBeGreaterThan(0);
    expect(await q.stats()).toMatchObject({ pending: 0, inFlight: 0, dead: 0 });
    await kv.close();
  }, 60_000);
});
