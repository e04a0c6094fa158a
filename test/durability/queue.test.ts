import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
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

  it("settles leases of a file written before lock tokens carried the message's seq", async () => {
    const path = join(dir, "earlier.db");
    let kv = await openKv(path, { sweepInterval: 0 });
    await kv.queue("jobs").enqueue("a");
    await kv.queue("jobs").enqueue("b");
    await kv.close();
    // As the earlier layout left it: one index per column set, bare UUID tokens.
    const raw = new Database(path);
    raw.exec(`
      CREATE INDEX cellar_queue_order ON cellar_queue (queue, state, priority DESC, seq);
      CREATE INDEX cellar_queue_lease ON cellar_queue (queue, state, locked_until);
      CREATE UNIQUE INDEX cellar_queue_token ON cellar_queue (token) WHERE token IS NOT NULL;
      UPDATE cellar_queue SET state = 1, attempts = 1, token = 'c4f3e8a2-6b1d-4e0a-9f57-2d8b1c0e4a11',
        locked_until = 9007199254740991 WHERE seq = (SELECT min(seq) FROM cellar_queue);
    `);
    raw.close();

    kv = await openKv(path, { sweepInterval: 0 });
    const q = kv.queue("jobs");
    expect(await q.stats()).toMatchObject({ pending: 1, inFlight: 1 });
    await expect(q.ack("c4f3e8a2-0000-4e0a-9f57-2d8b1c0e4a11")).rejects.toMatchObject({
      code: "INVALID_TOKEN",
    });
    await q.ack("c4f3e8a2-6b1d-4e0a-9f57-2d8b1c0e4a11");
    const next = (await q.dequeue())!;
    expect(next.value).toBe("b");
    await q.extend(next.token, 60_000);
    await q.ack(next.token);
    await expect(q.ack(next.token)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
    expect(await q.stats()).toMatchObject({ pending: 0, inFlight: 0, dead: 0 });
    await kv.close();
    const file = new Database(path, { readonly: true });
    const indexes = file
      .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cellar_queue'")
      .pluck()
      .all();
    file.close();
    expect(indexes).not.toContain("cellar_queue_order");
    expect(indexes).not.toContain("cellar_queue_token");
  });

  it("refuses a token naming another message's seq", async () => {
    const kv = await openKv(join(dir, "tokens.db"), { sweepInterval: 0 });
    const q = kv.queue("jobs");
    await q.enqueue("a");
    await q.enqueue("b");
    const [a, b] = await q.dequeueMany(2);
    const [seqA] = a!.token.split(".");
    const forged = `${seqA}.${b!.token.split(".")[1]}`;
    await expect(q.ack(forged)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
    await expect(q.nack(forged)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
    await expect(q.extend(forged, 1000)).rejects.toMatchObject({ code: "INVALID_TOKEN" });
    await q.ack(a!.token);
    await q.ack(b!.token);
    await kv.close();
  });

  it("keeps the leases of a consumer process killed right after its dequeue resolved", async () => {
    const path = join(dir, "killed.db");
    const kv = await openKv(path, { sweepInterval: 0 });
    const q = kv.queue("work");
    for (let i = 0; i < 5; i++) await q.enqueue(i);
    const script = fileURLToPath(new URL("./queue-leaser.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", script, path, "3"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    while (!output.includes("leased\n")) await once(child.stdout!, "data");
    child.kill("SIGKILL");
    await once(child, "exit");
    const leased = output.split("\n").filter((line) => line !== "" && line !== "leased");
    expect(leased).toHaveLength(3);
    expect(await q.stats()).toMatchObject({ pending: 2, inFlight: 3 });
    const rest = await q.dequeueMany(10);
    expect(rest.map((m) => m.id)).not.toContain(leased[0]);
    expect(rest).toHaveLength(2);
    await kv.close();
  }, 30_000);

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
