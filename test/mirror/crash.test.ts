/**
 * A mirror killed mid-stream resumes from its checkpoint: a child process writes steadily to a
 * SQLite file while mirroring it, is SIGKILLed, and a second process on the same file lets the
 * mirror catch up; the table then holds exactly the entries `kv.list` returns, no row missing,
 * none left over, none twice.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { keyToPath, valueToJson } from "../../src/wire/json.js";
import { freshSchema, rows, sql, tempDir, until, urlOf } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHILD = fileURLToPath(new URL("./crash-child.ts", import.meta.url));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

function start(path: string, to: string, mode: "write" | "resume") {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, path, to, mode], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

it("resumes after SIGKILL and converges with no row missing or left over", async () => {
  const schema = freshSchema("crash");
  const to = urlOf(schema);
  const path = join(tempDir(), "crash.db");
  const db = await sql();
  const mirrored = async () => {
    const found = await db.query("SELECT to_regclass($1) AS t", [`"${schema}".items`]);
    if (found.rows[0].t === null) return 0;
    return (await db.query(`SELECT count(*)::int AS n FROM "${schema}".items`)).rows[0].n as number;
  };

  const writer = start(path, to, "write");
  // Mid-stream: the writer is well under way and the mirror has written some of it.
  await until(
    async () => /wrote [1-9]\d{3}/.test(writer.output().stdout) && (await mirrored()) >= 50,
    `the writer under way (${writer.output().stderr})`,
    30_000,
  );
  writer.child.kill("SIGKILL");
  expect(await writer.exited).toBeNull();

  const resumed = start(path, to, "resume");
  expect(await resumed.exited).toBe(0);
  const status = JSON.parse(resumed.output().stdout.trim());
  expect(status).toMatchObject({ resyncs: 0, lastResync: null, errors: 0 });
  expect(status.rowsWritten).toBeGreaterThanOrEqual(0);

  const kv = await openKv(path);
  const expected = new Map<string, { value: unknown; versionstamp: string }>();
  for await (const entry of kv.list({ prefix: ["items"] }))
    expected.set(keyToPath(entry.key), {
      value: valueToJson(entry.value),
      versionstamp: entry.versionstamp,
    });
  await kv.close();
  const table = await rows(schema, "items");
  expect(table.length).toBe(expected.size);
  expect(new Set(table.map((row) => row.key)).size).toBe(table.length);
  for (const row of table) {
    expect(expected.get(row.key as string), row.key as string).toEqual({
      value: row.value,
      versionstamp: row.versionstamp,
    });
  }
});
