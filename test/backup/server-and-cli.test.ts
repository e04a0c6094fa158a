/**
 * A server's backup route (admin tokens of every namespace only), and `cellar backup` /
 * `cellar restore` end to end: against a SQLite file, a running server and PostgreSQL, and
 * their refusals — one line on stderr, a non-zero exit, nothing left at the target.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";
import { expectStateAt, Recorder, seed, underWrites } from "./scenario.js";

const CLI = new URL("../../src/cli/index.ts", import.meta.url).pathname;
const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `backup_cli_${randomBytes(4).toString("hex")}`;
const ADMIN = "admin-token-of-every-namespace";
const WRITER = "write-token-of-every-namespace";
const TENANT_ADMIN = "admin-token-of-one-namespace";

const dir = mkdtempSync(join(tmpdir(), "cellar-backup-cli-"));
let server: RunningServer;
let recorder: Recorder;

beforeAll(async () => {
  server = await startServer({
    db: join(dir, "served.db"),
    port: 0,
    tokens: [
      { token: ADMIN, namespaces: ["*"], access: "admin" },
      { token: WRITER, namespaces: ["*"], access: "write" },
      { token: TENANT_ADMIN, namespaces: ["tenant"], access: "admin" },
    ],
  });
  recorder = new Recorder(server.kv);
  await seed(recorder, 200, 1000);
  await server.kv.namespace("tenant").set(["hidden"], "in a namespace");
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  for (const name of [schema, `${schema}_bk`])
    await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
  await client.end();
});

async function cellar(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [
      "--import",
      "tsx",
      CLI,
      ...args,
    ]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** One line on stderr, no stack trace. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^cellar: /);
  expect(lines[0]).toMatch(pattern);
  expect(stderr).not.toMatch(/\n\s+at /);
}

describe("GET /api/admin/backup", () => {
  const get = (token?: string) =>
    fetch(`${server.url}/api/admin/backup`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  it("refuses a token that is not an admin of every namespace, with a JSON body", async () => {
    for (const token of [WRITER, TENANT_ADMIN]) {
      const response = await get(token);
      expect(response.status).toBe(403);
      expect(response.headers.get("content-type")).toMatch(/application\/json/);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("FORBIDDEN");
    }
    const anonymous = await get();
    expect(anonymous.status).toBe(401);
  });

  it("streams a consistent SQLite backup to an admin while writes go on", async () => {
    const { result: response, concurrent } = await underWrites(recorder, async () => {
      const response = await get(ADMIN);
      const bytes = Buffer.from(await response.arrayBuffer());
      return { response, bytes };
    });
    expect(concurrent).toBeGreaterThan(0);
    expect(response.response.status).toBe(200);
    expect(response.response.headers.get("content-type")).toBe("application/vnd.sqlite3");
    const versionstamp = response.response.headers.get("x-cellar-versionstamp")!;
    writeFileSync(join(dir, "streamed.db"), response.bytes);
    const kv = await openKv(join(dir, "streamed.db"));
    try {
      await expectStateAt(kv, recorder, versionstamp);
      expect((await kv.namespace("tenant").get(["hidden"])).value).toBe("in a namespace");
    } finally {
      await kv.close();
    }
  });
});

describe("cellar backup and cellar restore", () => {
  it("backs up a server with an admin token, and restores the file", async () => {
    const run = await cellar("backup", "--db", server.url, "--token", ADMIN, join(dir, "cli.db"));
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { versionstamp: string; entries: number };
    expect(result.entries).toBeGreaterThan(200);

    const restored = await cellar("restore", join(dir, "cli.db"), join(dir, "cli-restored.db"));
    expect(restored.code).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({
      command: "restore",
      versionstamp: result.versionstamp,
      entries: result.entries,
    });
    const kv = await openKv(join(dir, "cli-restored.db"));
    await expectStateAt(kv, recorder, result.versionstamp);
    await kv.close();
  });

  it("backs up a SQLite file and a PostgreSQL schema, and restores as of a versionstamp", async () => {
    const file = join(dir, "plain.db");
    const kv = await openKv(file);
    const first = await kv.set(["a"], 1);
    await kv.set(["a"], 2);
    await kv.close();
    expect((await cellar("backup", "--db", file, join(dir, "plain-bk.db"))).code).toBe(0);
    const at = await cellar(
      "restore",
      join(dir, "plain-bk.db"),
      join(dir, "plain-at.db"),
      "--at",
      first.versionstamp,
    );
    expect(at.code).toBe(0);
    const restored = await openKv(join(dir, "plain-at.db"));
    expect((await restored.get(["a"])).value).toBe(1);
    await restored.close();

    const pgKv = await openKv(`${POSTGRES}?schema=${schema}`);
    await pgKv.set(["pg"], "value");
    await pgKv.close();
    const pgRun = await cellar(
      "backup",
      "--db",
      `${POSTGRES}?schema=${schema}`,
      `${POSTGRES}?schema=${schema}_bk`,
    );
    expect(pgRun.stderr).toBe("");
    expect(pgRun.code).toBe(0);
    const copy = await openKv(`${POSTGRES}?schema=${schema}_bk`);
    expect((await copy.get(["pg"])).value).toBe("value");
    await copy.close();
  });

  it("refuses bad input in one line on stderr, with a non-zero exit, leaving nothing", async () => {
    const taken = join(dir, "cli.db");
    // Each run starts a process: the library's tests cover the other refusals.
    const [overwrite, wrongToken, badAt, unreachable] = await Promise.all([
      cellar("restore", join(dir, "plain-bk.db"), taken),
      cellar("backup", "--db", server.url, "--token", WRITER, join(dir, "w.db")),
      cellar("restore", taken, join(dir, "z.db"), "--at", "tomorrow"),
      cellar("backup", "--db", "http://127.0.0.1:9", join(dir, "u.db")),
    ]);
    expect(overwrite!.code).toBe(1);
    expectOneLine(overwrite!.stderr, /already exists; pass force \(--force\)/);
    expect(wrongToken!.code).toBe(1);
    expectOneLine(wrongToken!.stderr, /refused the backup \(403\): .*needs admin/);
    expect(badAt!.code).toBe(2);
    expectOneLine(badAt!.stderr, /--at takes a versionstamp of 20 lowercase hex digits/);
    expect(unreachable!.code).toBe(1);
    expectOneLine(unreachable!.stderr, /cannot reach the server at http:\/\/127\.0\.0\.1:9/);

    for (const name of ["w.db", "z.db", "u.db"]) expect(existsSync(join(dir, name))).toBe(false);
    expect(readdirSync(dir).filter((name) => name.includes("partial"))).toEqual([]);
  });

  it("documents restore, its window and examples", async () => {
    const help = await cellar("restore", "--help");
    expect(help.stdout).toMatch(/--at <versionstamp>/);
    expect(help.stdout).toMatch(/Point in time[\s\S]*Examples:[\s\S]*cellar restore/);
  });
});
