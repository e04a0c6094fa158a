/**
 * `openKv` on paths that cannot hold a Cellar database: each is refused at once with a `KvError`
 * that names the path and says what is wrong; never a hang, never a raw Node or SQLite error.
 * The `cellar` command prints that refusal as one line.
 *
 * A path inside procfs used to block the event loop for good (Node's recursive mkdir loops
 * there), which no test timeout can interrupt: such paths are opened in a child process killed
 * after a few seconds.
 */
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvError, openKv } from "../../src/index.js";
import { canMount, mountTmpfs, remount, unmountAll } from "./tmpfs.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = join(ROOT, "src/cli/index.ts");
/** Long enough for a child to load tsx and refuse; far shorter than a hang. */
const CHILD_TIMEOUT = 10_000;

let dir = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "cellar-paths-"));
});

afterAll(() => {
  try {
    execFileSync("chattr", ["-i", join(dir, "immutable.db")], { stdio: "pipe" });
  } catch {
    // Not made immutable: chattr is missing or the file system lacks the attribute.
  }
  rmSync(dir, { recursive: true, force: true });
  unmountAll();
});

/** What `openKv(path)` rejects with, from this process. */
async function refusal(path: string): Promise<KvError> {
  const error = await openKv(path).then(
    async (kv) => {
      await kv.close();
      return new Error(`openKv opened ${path}`);
    },
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(KvError);
  expect((error as Error).message).toContain(path);
  return error as KvError;
}

/** What `openKv(path)` rejects with, from a child process killed if it does not answer. */
function refusalInChild(path: string): Promise<{ name: string; code: string; message: string }> {
  const script = `import(${JSON.stringify(join(ROOT, "src/index.ts"))}).then((m) => m.openKv(${JSON.stringify(path)})).then(
    () => console.log(JSON.stringify({ name: "opened", code: "", message: "" })),
    (e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })),
  ).then(() => process.exit(0));`;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: ROOT, timeout: CHILD_TIMEOUT },
      (error, stdout) => {
        if (error) reject(new Error(`openKv(${path}) did not answer: ${error.message}`));
        else resolve(JSON.parse(stdout));
      },
    );
  });
}

/** `cellar serve --db path`, which must refuse and exit with one line on stderr. */
function serve(path: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", CLI, "serve", "--db", path, "--port", "0"],
      { cwd: ROOT, timeout: CHILD_TIMEOUT },
      (error, _stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stderr }),
    );
  });
}

describe("openKv on a file that is not Cellar's", () => {
  it("refuses random bytes as not a SQLite database", async () => {
    const path = join(dir, "random.db");
    writeFileSync(path, randomBytes(8192));
    const error = await refusal(path);
    expect(error.code).toBe("STORAGE_ERROR");
    expect(error.message).toMatch(/not a SQLite database/);
  });

  it("opens beside another application's unrelated tables and leaves them alone", async () => {
    const path = join(dir, "shared.db");
    const other = new Database(path);
    other.exec("CREATE TABLE kv (k TEXT, v TEXT); INSERT INTO kv VALUES ('theirs', 'kept')");
    other.close();
    const kv = await openKv(path);
    await kv.set(["ours"], 1);
    await kv.close();
    const reread = new Database(path, { readonly: true });
    expect(reread.prepare("SELECT v FROM kv WHERE k = 'theirs'").pluck().get()).toBe("kept");
    reread.close();
  });

  it("refuses a file whose tables are named like Cellar's but are not", async () => {
    const path = join(dir, "impostor.db");
    const other = new Database(path);
    other.exec("CREATE TABLE cellar_kv (id INTEGER PRIMARY KEY, body TEXT)");
    other.close();
    const error = await refusal(path);
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toMatch(/cellar_kv.*Cellar did not create/);
  });
});

describe("openKv on a path that cannot hold a file", () => {
  it("refuses a URL of a scheme it does not open, rather than making a file of that name", async () => {
    for (const url of ["mysql://x", "postgress://db/app", "sqlite:///tmp/a.db", "redis://h"]) {
      const error = await refusal(url);
      expect(error.code).toBe("INVALID_ARGUMENT");
      expect(error.message).toMatch(/not a \w+:\/\/ URL$/);
    }
  });

  it("refuses a directory", async () => {
    const path = join(dir, "folder.db");
    mkdirSync(path);
    const error = await refusal(path);
    expect(error.code).toBe("INVALID_ARGUMENT");
    expect(error.message).toMatch(/is a directory/);
  });

  it("refuses a path whose parent is a regular file or a device", async () => {
    const file = join(dir, "plain");
    writeFileSync(file, "");
    const under = await refusal(join(file, "x.db"));
    expect(under.code).toBe("INVALID_ARGUMENT");
    expect(under.message).toContain(`${file} is not a folder`);
    expect((await refusal("/dev/null/x.db")).message).toContain("/dev/null is not a folder");
    expect((await refusal("/dev/null")).message).toMatch(/not a regular file/);
  });

  it("refuses paths inside procfs and sysfs at once instead of looping", async () => {
    const [proc, sys] = await Promise.all([
      refusalInChild("/proc/self/foo/bar.db"),
      refusalInChild("/sys/cellar-missing/x.db"),
    ]);
    expect(proc).toMatchObject({ name: "KvError", code: "STORAGE_ERROR" });
    expect(proc.message).toMatch(
      /\/proc\/self\/foo\/bar\.db: cannot create its folder \/proc\/self\/foo: the file system there does not allow new folders/,
    );
    expect(sys).toMatchObject({ name: "KvError", code: "STORAGE_ERROR" });
    expect(sys.message).toContain("/sys/cellar-missing/x.db");
  });

  it("refuses an immutable file, which even root cannot write", async (ctx) => {
    const path = join(dir, "immutable.db");
    await (await openKv(path)).close();
    try {
      execFileSync("chattr", ["+i", path], { stdio: "pipe" });
    } catch {
      ctx.skip("chattr +i is not available on this file system");
    }
    const error = await refusal(path);
    expect(error.code).toBe("STORAGE_ERROR");
    expect(error.message).toMatch(/read-only/);
  });
});

describe.skipIf(!canMount)("openKv on a read-only file system", () => {
  it("refuses a new file, a new folder and an existing database there", async () => {
    const empty = mountTmpfs("ro")!;
    expect((await refusal(join(empty, "new.db"))).message).toMatch(/read-only file system/);
    expect((await refusal(join(empty, "sub", "new.db"))).message).toMatch(/read-only/);

    const frozen = mountTmpfs("size=1m")!;
    const path = join(frozen, "app.db");
    const kv = await openKv(path);
    await kv.set(["kept"], 1);
    await kv.close();
    remount(frozen, "remount,ro");
    const error = await refusal(path);
    expect(error.code).toBe("STORAGE_ERROR");
    expect(error.message).toMatch(/read-only file system/);
  });
});

describe("cellar serve --db on a bad path", () => {
  it("prints one line naming the path and exits", async () => {
    const file = join(dir, "plain-for-cli");
    writeFileSync(file, "");
    const paths = ["/proc/self/foo/bar.db", join(file, "x.db")];
    const runs = await Promise.all(paths.map(serve));
    for (const [i, run] of runs.entries()) {
      expect(run.code).not.toBe(0);
      const lines = run.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^cellar: cannot open SQLite database /);
      expect(lines[0]).toContain(paths[i]);
    }
  });
});
