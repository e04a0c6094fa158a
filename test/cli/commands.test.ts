/**
 * The data commands of `cellar` end to end, each a child process, against a SQLite file, a
 * PostgreSQL schema and a running server: reads and writes, watch, atomic, queues, export and
 * import, tokens, and the refusals that must be one line on stderr with their exit status.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokens } from "../../src/http/auth.js";
import { type Kv, KvU64, openKv } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { tempDir } from "../http/helpers.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "src/cli/index.ts");
const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `cellar_cli_${process.pid}_${Date.now().toString(36)}`;
const dir = tempDir("cellar-cli-commands-");

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of a child: the test's own, without any variable `cellar` reads. */
const cleanEnv = () =>
  Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(CELLAR_|DATABASE_URL$)/.test(name)),
  );

function start(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    cwd: ROOT,
    env: { ...cleanEnv(), ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** Runs `cellar args` to its end, with `input` on stdin. */
async function cellar(
  args: readonly string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const child = start(args, options.env);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on("data", (chunk) => {
    stderr += chunk;
  });
  child.stdin!.end(options.input ?? "");
  const [code] = await once(child, "exit");
  return { code: code as number | null, stdout, stderr };
}

const lines = (text: string) =>
  text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line));

/** A refusal: the status, and one line on stderr, `cellar: …`, without a stack. */
function expectRefused(run: Run, code: number, message: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  expect(run.stderr).toMatch(/^cellar: [^\n]+\n$/);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}

/** One value of every kind the lossless JSON forms carry. */
function samples(): Record<string, unknown> {
  const cycle: Record<string, unknown> = { name: "loop" };
  cycle.self = cycle;
  const sparse = [1];
  sparse[2] = 3;
  return {
    string: "héllo ✓",
    empty: "",
    int: 42,
    float: -1.5,
    nan: Number.NaN,
    negativeZero: -0,
    infinity: Number.POSITIVE_INFINITY,
    negativeInfinity: Number.NEGATIVE_INFINITY,
    bigint: -(2n ** 70n),
    bytes: new Uint8Array([0, 1, 254, 255]),
    int32: new Int32Array([1, -2, 3]),
    date: new Date("2025-06-01T12:34:56.789Z"),
    map: new Map<unknown, unknown>([
      ["a", 1],
      [2n, new Set([1, "x"])],
    ]),
    set: new Set(["x", 1, null]),
    nested: { a: [1, { b: [true, null, { c: new Date(0) }] }], $tagLike: 1 },
    dollarOnly: { $bigint: "not a tag" },
    u64: new KvU64(18_446_744_073_709_551_615n),
    null: null,
    array: [1, "two", [3], { four: 4 }],
    regexp: /ab+c/gi,
    undefined: undefined,
    boolean: false,
    sparse,
    cycle,
  };
}

async function entries(kv: Kv, prefix: readonly (string | number)[]) {
  const out: { key: unknown; value: unknown }[] = [];
  for await (const e of kv.list({ prefix: [...prefix] })) out.push({ key: e.key, value: e.value });
  return out;
}

afterAll(async () => {
  dir.cleanup();
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

interface Target {
  /** The flags that name the database, as a user types them. */
  readonly flags: string[];
  /** The same database in this process, to prepare and check what the commands did. */
  readonly kv: Kv;
  /** A view of namespace `name`. */
  namespace(name: string): Promise<Kv>;
  close(): Promise<void>;
}

const tokensFile = join(dir.path, "tokens.json");

const targets: [string, () => Promise<Target>][] = [
  [
    "a SQLite file",
    async () => {
      const path = join(dir.path, "cli.db");
      const kv = await openKv(path);
      return {
        flags: ["--db", path],
        kv,
        namespace: async (name) => kv.namespace(name),
        close: () => kv.close(),
      };
    },
  ],
  [
    "PostgreSQL",
    async () => {
      const url = `${POSTGRES}?schema=${schema}`;
      const kv = await openKv(url);
      return {
        flags: ["--db", url],
        kv,
        namespace: async (name) => kv.namespace(name),
        close: () => kv.close(),
      };
    },
  ],
  [
    "a server",
    async () => {
      // The server's token comes from `cellar tokens create`, so the file it writes is proven
      // to be one the server takes.
      const created = await cellar([
        "tokens",
        "create",
        "--file",
        tokensFile,
        "--namespace",
        "*",
        "--access",
        "admin",
        "--name",
        "ops",
        "--json",
      ]);
      expect(created.code, created.stderr).toBe(0);
      const { token } = JSON.parse(created.stdout) as { token: string };
      const server: RunningServer = await startServer({
        db: join(dir.path, "served.db"),
        port: 0,
        tokensFile,
      });
      const kv = await openKv(server.url, { token });
      const views: Kv[] = [];
      return {
        flags: ["--db", server.url, "--token", token],
        kv,
        namespace: async (name) => {
          const view = await openKv(server.url, { token, namespace: name });
          views.push(view);
          return view;
        },
        close: async () => {
          for (const view of [...views, kv]) await view.close();
          await server.close();
        },
      };
    },
  ],
];

describe.each(targets)("cellar's data commands on %s", (_name, open) => {
  let target: Target;
  beforeAll(async () => {
    target = await open();
  }, 120_000);
  afterAll(() => target?.close());
  const run = (args: string[], options?: { input?: string }) =>
    cellar([...args, ...target.flags], options);

  it("sets, gets, lists, counts, reads history and deletes", async () => {
    const [ada, second] = await Promise.all([
      run([
        "set",
        "users/ada",
        '{"name": "Ada", "born": {"$date": "1815-12-10T00:00:00.000Z"}, "langs": {"$set": ["en"]}}',
        "--expire-in",
        "3600000",
      ]),
      run(["set", '["users", 2]', '{"name": "Bob", "visits": {"$bigint": "12"}}']),
    ]);
    expect(ada.code, ada.stderr).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    expect(lines(ada.stdout)[0]).toMatchObject({ ok: true });
    expect(await target.kv.get(["users", "ada"])).toMatchObject({
      value: { name: "Ada", born: new Date("1815-12-10T00:00:00.000Z"), langs: new Set(["en"]) },
    });
    expect((await target.kv.get(["users", 2])).value).toEqual({ name: "Bob", visits: 12n });

    const [got, missing, listed, counted, history] = await Promise.all([
      run(["get", '["users", "ada"]', "--metadata"]),
      run(["get", "users/nobody"]),
      run(["list", "--prefix", "users"]),
      run(["count", "--prefix", "users", "--where", '{"name": "Bob"}']),
      run(["history", "users/ada"]),
    ]);
    expect(lines(got.stdout)).toEqual([
      {
        key: ["users", "ada"],
        value: {
          name: "Ada",
          born: { $date: "1815-12-10T00:00:00.000Z" },
          langs: { $set: ["en"] },
        },
        versionstamp: expect.stringMatching(/^[0-9a-f]{20}$/),
        metadata: expect.objectContaining({ version: 1, expiresAt: expect.any(Number) }),
      },
    ]);
    expectRefused(missing, 3, /users\/nobody: not found/);
    // Strings order before numbers, as in Deno KV.
    expect(lines(listed.stdout).map((e) => e.key)).toEqual([
      ["users", "ada"],
      ["users", 2],
    ]);
    expect(counted.stdout.trim()).toBe("1");
    expect(lines(history.stdout)).toEqual([
      expect.objectContaining({ version: 1, dataHash: expect.any(String) }),
    ]);

    const deleted = await run(["delete", "users/ada"]);
    expect(lines(deleted.stdout)).toEqual([{ ok: true }]);
    expect((await target.kv.get(["users", "ada"])).versionstamp).toBeNull();
  }, 150_000);

  it("commits atomic documents all or nothing", async () => {
    const document = {
      checks: [{ key: ["atomic", "a"], versionstamp: null }],
      mutations: [
        { type: "set", key: ["atomic", "a"], value: { $map: [["k", 1]] } },
        { type: "sum", key: ["atomic", "n"], value: { $u64: "5" } },
      ],
    };
    const first = await run(["atomic"], { input: JSON.stringify(document) });
    expect(first.code, first.stderr).toBe(0);
    expect(lines(first.stdout)[0]).toMatchObject({ ok: true, versionstamp: expect.any(String) });
    const file = join(dir.path, `atomic-${_name.length}.json`);
    writeFileSync(file, JSON.stringify(document));
    const again = await run(["atomic", "--file", file]);
    expectRefused(again, 1, /a check failed; nothing was written/);
    expect((await target.kv.get(["atomic", "n"])).value).toEqual(new KvU64(5n));
    expect((await target.kv.get(["atomic", "a"])).value).toEqual(new Map([["k", 1]]));
  }, 150_000);

  it("shows queues and requeues and purges their dead letters", async () => {
    const jobs = target.kv.queue("jobs");
    for (const n of [1, 2]) await jobs.enqueue({ n }, { backoffSchedule: [] });
    for (let i = 0; i < 2; i++) {
      const message = await jobs.dequeue();
      await jobs.nack(message!.token, { error: "boom" });
    }
    await jobs.enqueue({ n: 3 });
    const [stats, dead] = await Promise.all([
      run(["queue", "stats"]),
      run(["queue", "dlq", "list", "--queue", "jobs"]),
    ]);
    expect(lines(stats.stdout)).toContainEqual(
      expect.objectContaining({ name: "jobs", pending: 1, dead: 2 }),
    );
    const deadLines = lines(dead.stdout);
    expect(deadLines.map((m) => m.value)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(deadLines[0]).toMatchObject({ error: "boom", attempts: 1 });

    const requeued = await run(["queue", "dlq", "requeue", deadLines[0].id, "--queue", "jobs"]);
    expect(lines(requeued.stdout)).toEqual([{ ok: true, requeued: 1 }]);
    const purged = await run(["queue", "dlq", "purge", "--queue", "jobs"]);
    expect(lines(purged.stdout)).toEqual([{ ok: true, purged: 1 }]);
    expect(await jobs.stats()).toMatchObject({ pending: 2, dead: 0 });
  }, 150_000);

  it("watches a prefix: one line per change, until interrupted", async () => {
    const child = start(["watch", "--prefix", "watched", "--json", ...target.flags]);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr!.on("data", (chunk) => {
      stderr += chunk;
    });
    while (!stderr.includes("watching")) {
      if (child.exitCode !== null) throw new Error(stderr);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await target.kv.set(["watched", "a"], { n: 1n });
    await target.kv.set(["elsewhere"], 1);
    await target.kv.delete(["watched", "a"]);
    while (stdout.split("\n").length < 3) {
      if (child.exitCode !== null) throw new Error(stderr);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill("SIGINT");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
    expect(lines(stdout)).toEqual([
      {
        type: "set",
        key: ["watched", "a"],
        versionstamp: expect.any(String),
        value: { n: { $bigint: "1" } },
      },
      { type: "delete", key: ["watched", "a"], versionstamp: expect.any(String), value: null },
    ]);
  }, 150_000);

  it("exports every value type and imports it into another namespace, losslessly", async () => {
    const values = samples();
    const op = target.kv.atomic();
    for (const [name, value] of Object.entries(values)) op.set(["types", name], value);
    op.set(["types", "expiring"], "soon gone", { expireIn: 3_600_000 });
    await op.commit();
    const file = join(dir.path, `types-${_name.length}.ndjson`);
    const exported = await run(["export", "--prefix", "types", "--metadata", "--output", file]);
    expect(exported.code, exported.stderr).toBe(0);
    const exportedLines = lines(readFileSync(file, "utf8"));
    expect(exportedLines).toHaveLength(Object.keys(values).length + 1);
    expect(exportedLines.find((l) => l.key[1] === "expiring")).toMatchObject({
      expiresAt: expect.any(Number),
      metadata: { version: 1 },
    });

    const imported = await run(["import", file, "--namespace", "copy"]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toMatch(/imported 25 entries/);
    const copy = await target.namespace("copy");
    expect(await entries(copy, ["types"])).toEqual(await entries(target.kv, ["types"]));
    const expiring = await copy.get(["types", "expiring"], { metadata: true });
    expect(expiring.metadata?.expiresAt).toBeGreaterThan(Date.now());

    const whole = await run(["export", "--all-namespaces", "--prefix", "types"]);
    if (_name === "a server") {
      // A server answers for the token's namespaces only: export each with --namespace.
      expectRefused(whole, 2, /--all-namespaces reads a SQLite file or a postgres:\/\/ database/);
      return;
    }
    expect(whole.code, whole.stderr).toBe(0);
    const byNamespace = lines(whole.stdout).map((l) => l.namespace ?? "");
    expect(new Set(byNamespace)).toEqual(new Set(["", "copy"]));
    expect(byNamespace).toHaveLength(50);
  }, 150_000);
});

describe("cellar export and import at scale", () => {
  it("round-trips 100,000 entries of every value type between SQLite files", async () => {
    const source = join(dir.path, "big-source.db");
    const copy = join(dir.path, "big-copy.db");
    const values = Object.values(samples());
    const kv = await openKv(source, { durability: "normal" });
    for (let i = 0; i < 100_000; i += 500) {
      const op = kv.atomic();
      for (let j = i; j < i + 500; j++) {
        op.set(
          ["big", j % 7, j],
          j % 3 === 0 ? { j, v: values[j % values.length] } : values[j % values.length],
        );
      }
      await op.commit();
    }
    const file = join(dir.path, "big.ndjson");
    const exported = await cellar(["export", "--db", source, "--output", file]);
    expect(exported.code, exported.stderr).toBe(0);
    const imported = await cellar(["import", file, "--db", copy]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toMatch(/imported 100000 entries/);
    expect(existsSync(`${file}.import-state`)).toBe(false);

    const other = await openKv(copy);
    const mismatches: unknown[] = [];
    const left = kv.list({ prefix: [] }, { batchSize: 1000 });
    const right = other.list({ prefix: [] }, { batchSize: 1000 })[Symbol.asyncIterator]();
    let count = 0;
    for await (const a of left) {
      const b = (await right.next()).value;
      count++;
      if (!b || !isDeepStrictEqual(a.key, b.key) || !isDeepStrictEqual(a.value, b.value)) {
        if (mismatches.length < 5) mismatches.push({ a, b });
      }
    }
    expect((await right.next()).done).toBe(true);
    expect(count).toBe(100_000);
    expect(mismatches).toEqual([]);
    await kv.close();
    await other.close();
  }, 120_000);

  it("resumes an interrupted import after the lines it committed", async () => {
    const file = join(dir.path, "resume.ndjson");
    const line = (i: number) => JSON.stringify({ key: ["r", i], value: { $bigint: String(i) } });
    const body = Array.from({ length: 10 }, (_, i) => line(i));
    const db = join(dir.path, "resume.db");
    // Line 8 is malformed: the import stops there, after committing lines 1–6 in batches of 2.
    writeFileSync(file, `${body.map((l, i) => (i === 7 ? "{oops" : l)).join("\n")}\n`);
    const stopped = await cellar(["import", file, "--batch-size", "2", "--db", db]);
    expectRefused(stopped, 2, /line 8: /);
    expect(JSON.parse(readFileSync(`${file}.import-state`, "utf8"))).toMatchObject({ lines: 6 });
    writeFileSync(file, `${body.join("\n")}\n`);
    const resumed = await cellar(["import", file, "--resume", "--batch-size", "2", "--db", db]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/imported 4 entries.*6 lines skipped/);
    expect(existsSync(`${file}.import-state`)).toBe(false);
    const kv = await openKv(db);
    expect((await entries(kv, ["r"])).map((e) => e.value)).toEqual(
      Array.from({ length: 10 }, (_, i) => BigInt(i)),
    );
    await kv.close();
  }, 150_000);
});

describe("cellar tokens", () => {
  it("creates, lists and revokes tokens in a file the server reads", async () => {
    const file = join(dir.path, "tokens-admin.json");
    const [created] = await Promise.all([
      cellar([
        "tokens",
        "create",
        "--file",
        file,
        "--namespace",
        "a",
        "b",
        "--access",
        "write",
        "--name",
        "app",
        "--json",
      ]),
    ]);
    expect(created.code, created.stderr).toBe(0);
    const grant = JSON.parse(created.stdout);
    expect(grant.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const second = await cellar(
      ["tokens", "create", "--file", file, "--namespace", "", "--access", "read"],
      {
        env: {},
      },
    );
    expect(second.code, second.stderr).toBe(0);
    expect(loadTokens(file)).toEqual([
      { token: grant.token, namespaces: ["a", "b"], access: "write", name: "app" },
      { token: JSON.parse(second.stdout).token, namespaces: [""], access: "read" },
    ]);
    const [listed, duplicate, badAccess] = await Promise.all([
      cellar(["tokens", "list", "--json"], { env: { CELLAR_TOKENS: file } }),
      cellar([
        "tokens",
        "create",
        "--file",
        file,
        "--namespace",
        "a",
        "--access",
        "read",
        "--name",
        "app",
      ]),
      cellar(["tokens", "create", "--file", file, "--namespace", "a", "--access", "root"]),
    ]);
    expect(lines(listed.stdout)).toEqual([
      {
        name: "app",
        access: "write",
        namespaces: ["a", "b"],
        token: `${grant.token.slice(0, 4)}…`,
      },
      { name: "#2", access: "read", namespaces: [""], token: expect.stringMatching(/…$/) },
    ]);
    expect(listed.stdout).not.toContain(grant.token);
    expectRefused(duplicate, 2, /already/);
    expectRefused(badAccess, 2, /--access.*root/);
    const revoked = await cellar(["tokens", "revoke", "app", "--file", file, "--json"]);
    expect(lines(revoked.stdout)).toEqual([{ ok: true, revoked: 1 }]);
    expect(loadTokens(file).map((g) => g.access)).toEqual(["read"]);
  }, 150_000);
});

describe("cellar's refusals", () => {
  it("prints one line and the right exit status for bad input, outages and wrong tokens", async () => {
    const db = join(dir.path, "refusals.db");
    const server = await startServer({
      db: ":memory:",
      port: 0,
      tokens: [{ token: "a-long-enough-secret-token", namespaces: ["*"], access: "admin" }],
    });
    const closed = await startServer({ db: ":memory:", port: 0 });
    const closedUrl = closed.url;
    await closed.close();
    try {
      const runs = await Promise.all([
        cellar(["set", "k", "{bad", "--db", db]),
        cellar(["set", "k", '{"$bigint": "twelve"}', "--db", db]),
        cellar(["list", "--limit", "many", "--db", db]),
        cellar(["get", "k", "--bogus", "--db", db]),
        cellar(["get", "k"]),
        cellar(["get", "users/~q:1", "--db", db]),
        cellar(["list", "--where", '{"age": {"$near": 1}}', "--db", db]),
        cellar(["atomic", "--db", db], { input: '{"mutations": [{"type": "set"}]}' }),
        cellar(["watch", "--db", db]),
        cellar(["import", "--db", db], { input: '{"key": ["a"], "value": 1}\nnot json\n' }),
        cellar(["get", "k", "--db", closedUrl]),
        cellar(["get", "k", "--db", server.url, "--token", "wrong-token-of-enough-length"]),
        cellar(["get", "k", "--db", "mysql://localhost/app"]),
        cellar(["history", "never/written", "--db", db]),
        cellar(["queue", "dlq", "requeue", "no-such-id", "--db", db]),
      ]);
      const [
        badJson,
        badTag,
        badLimit,
        badFlag,
        noDb,
        badKey,
        badWhere,
        badAtomic,
        emptyWatch,
        badImport,
        unreachable,
        wrongToken,
        badScheme,
        noHistory,
        noDead,
      ] = runs;
      expectRefused(badJson!, 2, /the value is not JSON/);
      expectRefused(badTag!, 2, /\$bigint must be a decimal integer string/);
      expectRefused(badLimit!, 2, /--limit.*'many' is invalid/);
      expectRefused(badFlag!, 2, /unknown option '--bogus'/);
      expectRefused(noDb!, 2, /no database: pass --db/);
      expectRefused(badKey!, 2, /the key: key segment 1/);
      expectRefused(badWhere!, 2, /\$near/);
      expectRefused(badAtomic!, 2, /the atomic document: mutations\.0/);
      expectRefused(emptyWatch!, 2, /watch needs keys, --prefix or --pattern/);
      expectRefused(badImport!, 2, /line 2: /);
      expectRefused(unreachable!, 1, /cannot reach the server/);
      expectRefused(wrongToken!, 1, /token/i);
      expectRefused(badScheme!, 2, /mysql:\/\//);
      expectRefused(noHistory!, 3, /never\/written: no history/);
      expectRefused(noDead!, 3, /no dead message no-such-id/);
    } finally {
      await server.close();
    }
  }, 150_000);
});
