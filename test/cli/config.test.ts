/**
 * `cellar serve` settings from flags, the environment and a config file, checked on a server
 * listening on a real loopback port.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { send, tempDir } from "../http/helpers.js";
import { cellarServe, type Served } from "./serve.js";

const dir = tempDir("cellar-config-");
const running: Served[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  dir.cleanup();
});

function start(args: string[], env: Record<string, string> = {}) {
  const served = cellarServe(args, env);
  running.push(served);
  return served;
}

function configFile(name: string, settings: unknown): string {
  const path = join(dir.path, name);
  writeFileSync(path, typeof settings === "string" ? settings : JSON.stringify(settings));
  return path;
}

/** Whether the server takes a page of `limit` entries (its maxPageSize is at least `limit`). */
const takesPage = async (url: string, limit: number) =>
  (await send(url, `/api/list?limit=${limit}`)).status === 200;

/** A refusal of the configuration: exit status 2 and one line on stderr, no stack. */
async function expectRefusal(served: Served, message: RegExp) {
  expect(await served.exited).toBe(2);
  const { stderr, stdout } = served.output();
  expect(stderr).toMatch(message);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stdout).not.toContain("listening");
}

describe("cellar serve settings", () => {
  it("takes the database, port and tokens file from the environment", async () => {
    const tokens = configFile("tokens.json", {
      tokens: [{ token: "env-admin-token-0000", namespaces: ["*"], access: "admin" }],
    });
    const db = join(dir.path, "from-env.db");
    const served = start([], { CELLAR_DB: db, PORT: "0", CELLAR_TOKENS: tokens });
    const url = await served.listening();
    expect(served.output().stdout).toContain(`(database: ${db})`);
    expect((await send(url, "/api/keys/a")).status).toBe(401);
    const put = await send(url, "/api/keys/a", {
      method: "PUT",
      body: { value: 1 },
      token: "env-admin-token-0000",
    });
    expect(put.status).toBe(200);
  });

  it("reads DATABASE_URL when CELLAR_DB is not set, and CELLAR_DB first", async () => {
    const served = start([], { DATABASE_URL: ":memory:", PORT: "0" });
    await served.listening();
    expect(served.output().stdout).toContain("(database: :memory:)");
    const both = start([], {
      DATABASE_URL: join(dir.path, "not-this.db"),
      CELLAR_DB: ":memory:",
      PORT: "0",
    });
    await both.listening();
    expect(both.output().stdout).toContain("(database: :memory:)");
  });

  it("puts every limit within reach: value size, key size, checks, mutations, read keys, body, page, watch keys", async () => {
    const config = configFile("limits.json", {
      db: ":memory:",
      port: 0,
      maxValueSize: 100,
      maxKeySize: 40,
      maxChecks: 1,
      maxMutations: 2,
      maxReadKeys: 2,
      maxBodySize: 2000,
      maxPageSize: 3,
      maxWatchKeys: 1,
      maxStreams: 5,
      historyDepth: 2,
      keepValues: [["audit"]],
      sweepInterval: 50,
      pingInterval: 1000,
    });
    const served = start(["--config", config]);
    const url = await served.listening();
    const status = async (path: string, body?: unknown, method?: string) =>
      (await send(url, path, { ...(body !== undefined && { body }), ...(method && { method }) }))
        .status;
    expect(await status("/api/keys/v", { value: "x".repeat(200) }, "PUT")).toBe(413);
    expect(await status(`/api/keys/${"k".repeat(60)}`, { value: 1 }, "PUT")).toBe(413);
    const check = { key: ["a"], versionstamp: null };
    expect(await status("/api/atomic", { checks: [check, check], mutations: [] })).toBe(400);
    const set = { type: "set", key: ["a"], value: 1 };
    expect(await status("/api/atomic", { checks: [], mutations: [set, set, set] })).toBe(400);
    expect(await status("/api/get", { keys: [["a"], ["b"], ["c"]] })).toBe(400);
    expect(await status("/api/get", { keys: [["a"], ["b"]] })).toBe(200);
    expect(await status("/api/get", { keys: [["x".repeat(2100)]] })).toBe(413);
    expect(await takesPage(url, 3)).toBe(true);
    expect(await takesPage(url, 4)).toBe(false);
    expect(await status("/api/watch/poll?key=a&key=b&timeout=1")).toBe(400);
    // History depth 2, values kept under ["audit"].
    for (const value of [1, 2, 3]) await status("/api/keys/audit/x", { value }, "PUT");
    const history = await send(url, "/api/history/audit/x");
    expect(history.json.revisions.map((r: { value: number }) => r.value)).toEqual([3, 2]);
    // The sweeper runs every 50 ms: an expired entry is gone from storage soon after.
    await status("/api/keys/short", { value: 1, expireIn: 1 }, "PUT");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await send(url, "/api/history/short")).json.revisions).toEqual([]);
  });

  it("ranks flags over the environment over the config file over the defaults", async () => {
    const config = configFile("rank.json", { db: ":memory:", port: 0, maxPageSize: 5 });
    const env = { CELLAR_MAX_PAGE_SIZE: "7" };
    const all = start(["--config", config, "--max-page-size", "9"], env);
    const fromFlag = await all.listening();
    expect([await takesPage(fromFlag, 9), await takesPage(fromFlag, 10)]).toEqual([true, false]);

    const noFlag = start(["--config", config], env);
    const fromEnv = await noFlag.listening();
    expect([await takesPage(fromEnv, 7), await takesPage(fromEnv, 8)]).toEqual([true, false]);

    const fileOnly = start([], { CELLAR_CONFIG: config });
    const fromFile = await fileOnly.listening();
    expect([await takesPage(fromFile, 5), await takesPage(fromFile, 6)]).toEqual([true, false]);

    const defaults = start(["--db", ":memory:", "--port", "0"]);
    const fromDefault = await defaults.listening();
    expect([await takesPage(fromDefault, 1000), await takesPage(fromDefault, 1001)]).toEqual([
      true,
      false,
    ]);
  });

  it("resolves a relative tokens path in a config file against the file's folder", async () => {
    configFile("rel-tokens.json", {
      tokens: [{ token: "relative-token-00000", namespaces: ["*"], access: "admin" }],
    });
    const config = configFile("rel.json", { db: ":memory:", port: 0, tokens: "rel-tokens.json" });
    const url = await start(["--config", config]).listening();
    expect((await send(url, "/api/keys/a")).status).toBe(401);
    expect((await send(url, "/api/keys/a", { token: "relative-token-00000" })).status).toBe(200);
  });

  it("refuses an unknown config field, with one line and exit status 2", async () => {
    const config = configFile("unknown.json", { db: ":memory:", maxValueSise: 10 });
    await expectRefusal(
      start(["--config", config]),
      /config file .*unknown\.json: unknown field "maxValueSise"; the fields are db, host, port/,
    );
  });

  it("refuses bad values from the file, the environment and flags with exit status 2", async () => {
    await Promise.all([
      expectRefusal(
        start(["--config", configFile("bad.json", { port: "eighty" })]),
        /port must be an integer in \[0, 65535\], got "eighty"/,
      ),
      expectRefusal(
        start(["--config", configFile("broken.json", "{ port: 1")]),
        /cannot read config file .*broken\.json/,
      ),
      expectRefusal(
        start(["--config", join(dir.path, "missing.json")]),
        /cannot read config file .*missing\.json/,
      ),
      expectRefusal(start([], { PORT: "http" }), /PORT must be an integer in \[0, 65535\]/),
      expectRefusal(
        start([], { CELLAR_DURABILITY: "sometimes" }),
        /CELLAR_DURABILITY must be one of full, normal, got "sometimes"/,
      ),
      expectRefusal(
        start(["--max-value-size", "0"]),
        /--max-value-size.*'0' is invalid.*integer in \[1, 268435456\]/,
      ),
      expectRefusal(
        start(["--db", ":memory:", "--port", "0", "--host", "0.0.0.0"]),
        /refusing to listen on 0\.0\.0\.0 without a tokens file/,
      ),
    ]);
  });
});
