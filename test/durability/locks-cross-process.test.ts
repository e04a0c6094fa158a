/**
 * Locks across processes on one SQLite file: holders in different processes exclude each other,
 * and a holder killed with SIGKILL loses its lock when its lease runs out, after which the token
 * it held fences nothing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, expect, it } from "vitest";
import { openKv } from "../../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-locks-"));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `code` with `kv` open on `path` in another process; resolves to it and its stdout lines. */
function runElsewhere(path: string, code: string) {
  const index = new URL("../../src/index.ts", import.meta.url).href;
  const script = `import { openKv } from ${JSON.stringify(index)}; const kv = await openKv(${JSON.stringify(path)}); ${code}`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator]() };
}

it("excludes holders in two processes from one read-modify-write, each write fenced", async () => {
  const path = join(dir, "contend.db");
  const kv = await openKv(path);
  await kv.set(["counter"], 0);
  const rounds = 15;
  // Both start together (each marks itself ready and waits for the other), so they contend.
  const worker = `
    await kv.set(["ready", process.pid], true);
    while ((await kv.count({ prefix: ["ready"] })) < 2) await new Promise((r) => setTimeout(r, 10));
    const tokens = [];
    for (let i = 0; i < ${rounds}; i++) {
      await kv.withLock("counter", async (lock) => {
        tokens.push(lock.token);
        const { value } = await kv.get(["counter"]);
        await new Promise((resolve) => setTimeout(resolve, 20));
        const res = await kv.atomic().checkLock(lock).set(["counter"], value + 1).commit();
        if (!res.ok) throw new Error("a fenced write of a held lock was refused");
      }, { wait: 20000, ttl: 2000 });
      // Locks are not fair: give the waiter, woken through the file, time to take its turn.
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    console.log(JSON.stringify(tokens));
    await kv.close();`;
  const workers = [runElsewhere(path, worker), runElsewhere(path, worker)];
  const tokens = await Promise.all(
    workers.map(async ({ child, lines }) => {
      const [line] = await Promise.all([lines.next(), once(child, "exit")]);
      expect(child.exitCode).toBe(0);
      return JSON.parse(line.value as string) as string[];
    }),
  );
  expect((await kv.get(["counter"])).value).toBe(2 * rounds);
  const all = tokens.flat();
  expect(new Set(all).size).toBe(2 * rounds);
  for (const list of tokens)
    for (let i = 1; i < list.length; i++) expect(list[i]! > list[i - 1]!).toBe(true);
  // The lock went back and forth between the processes, not to one and then the other.
  const owners = [...all].sort().map((token) => (tokens[0]!.includes(token) ? 0 : 1));
  const handovers = owners.filter((owner, i) => i > 0 && owner !== owners[i - 1]).length;
  expect(handovers).toBeGreaterThan(2);
  await kv.close();
}, 60_000);

it("frees a SIGKILLed holder's lock when its lease runs out, and refuses writes fenced with its token", async () => {
  const path = join(dir, "killed.db");
  const kv = await openKv(path);
  const { child, lines } = runElsewhere(
    path,
    `const lock = await kv.lock("leader", { ttl: 500 });
     await kv.atomic().checkLock(lock).set(["written-by"], "first holder").commit();
     console.log(lock.token);
     setInterval(() => {}, 1000);`,
  );
  const deadToken = (await lines.next()).value as string;
  expect(deadToken).toMatch(/^[0-9a-f]{20}$/);
  // It renews itself from its own process: still held well past its ttl.
  await new Promise((resolve) => setTimeout(resolve, 900));
  await expect(kv.lock("leader")).rejects.toMatchObject({ code: "LOCK_HELD" });
  const fence = { name: "leader", token: deadToken };
  expect((await kv.atomic().checkLock(fence).set(["probe"], 1).commit()).ok).toBe(true);

  child.kill("SIGKILL");
  await once(child, "exit");
  const started = Date.now();
  const next = await kv.lock("leader", { wait: 5000 });
  expect(Date.now() - started).toBeLessThan(2000);
  expect(next.token > deadToken).toBe(true);
  const stale = await kv.atomic().checkLock(fence).set(["written-by"], "dead holder").commit();
  expect(stale).toEqual({ ok: false });
  const fresh = await kv.atomic().checkLock(next).set(["written-by"], "second holder").commit();
  expect(fresh.ok).toBe(true);
  expect((await kv.get(["written-by"])).value).toBe("second holder");
  await next.release();
  await kv.close();
}, 30_000);
