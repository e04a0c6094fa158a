import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";
import { openKv } from "../../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-xproc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a few writes in another process against the same file. */
async function writeElsewhere(path: string, code: string): Promise<void> {
  const index = new URL("../../src/index.ts", import.meta.url).href;
  const script = `import { openKv } from ${JSON.stringify(index)}; const kv = await openKv(${JSON.stringify(path)}); ${code}; await kv.close();`;
  await promisify(execFile)(process.execPath, [
    "--import",
    "tsx",
    "--input-type=module",
    "-e",
    script,
  ]);
}

it("pushes another process's commits to watchers of the same SQLite file", async () => {
  const path = join(dir, "shared.db");
  const kv = await openKv(path);
  const keys = kv.watch([["config"]]).getReader();
  expect((await keys.read()).value?.[0]?.value).toBeNull();
  const prefix = kv.watchPrefix(["orders"]).getReader();
  await new Promise((resolve) => setTimeout(resolve, 50));

  await writeElsewhere(
    path,
    `await kv.set(["config"], "blue"); await kv.set(["orders", 1], "o1"); await kv.set(["orders", 2], "o2");`,
  );

  expect((await keys.read()).value?.[0]?.value).toBe("blue");
  const batches = [(await prefix.read()).value!, (await prefix.read()).value!];
  expect(batches.map((b) => b.entries.map((e) => e.value))).toEqual([["o1"], ["o2"]]);
  const own = await kv.set(["orders", 3], "o3");
  const third = (await prefix.read()).value!;
  expect(third.versionstamp).toBe(own.versionstamp);
  expect(third.versionstamp > batches[1]!.versionstamp).toBe(true);
  await keys.cancel();
  await prefix.cancel();
  await kv.close();
});

it("opens one new file from several processes at once, each waiting its turn", async () => {
  for (let round = 0; round < 2; round++) {
    const path = join(dir, `fresh-${round}.db`);
    const writers = Array.from({ length: 5 }, (_, i) =>
      writeElsewhere(path, `await kv.set(["opened", ${i}], process.pid)`),
    );
    await Promise.all(writers);
    const kv = await openKv(path);
    const { entries: opened } = await kv.paginate({ prefix: ["opened"] }, { limit: 10 });
    expect(opened.map((entry) => entry.key)).toEqual([0, 1, 2, 3, 4].map((i) => ["opened", i]));
    await kv.close();
  }
});

it("waits out another process's write lock on a new file, which SQLite reports without waiting", async () => {
  // Another process holds a write transaction on a file still in rollback-journal mode: switching
  // it to WAL fails at once with SQLITE_BUSY, busy timeout or not, until that process commits.
  const path = join(dir, "locked.db");
  const holder = spawn(
    process.execPath,
    [
      "-e",
      `const db = new (require("better-sqlite3"))(${JSON.stringify(path)});
       db.exec("CREATE TABLE other (a)"); db.exec("BEGIN IMMEDIATE"); db.exec("INSERT INTO other VALUES (1)");
       console.log("held"); setTimeout(() => { db.exec("COMMIT"); db.close(); }, 500);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await once(holder.stdout!, "data");
  const kv = await openKv(path);
  await kv.set(["opened"], true);
  expect((await kv.get(["opened"])).value).toBe(true);
  await kv.close();
  await once(holder, "exit");
});

it("looks for other processes' commits as often as crossProcessInterval says, and refuses a bad one", async () => {
  const path = join(dir, "interval.db");
  await expect(openKv(path, { crossProcessInterval: 0 })).rejects.toThrow(/crossProcessInterval/);
  const kv = await openKv(path, { crossProcessInterval: 5 });
  const seen: unknown[] = [];
  const stop = kv.subscribe(["n"], (event) => seen.push(event.entry?.value));
  await kv.currentVersionstamp();
  await writeElsewhere(path, 'await kv.set(["n"], 1)');
  await expect.poll(() => seen, { timeout: 2000 }).toEqual([1]);
  stop();
  await kv.close();
});
