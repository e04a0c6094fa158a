/** Backups of a SQLite file under concurrent writes, verified restores, point in time. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { backup, KvError, openKv, restore } from "../../src/index.js";
import { expectStateAt, Recorder, seed, underWrites } from "./scenario.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-backup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(promise: Promise<unknown>): Promise<KvError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KvError);
  return error as KvError;
}

describe("backup and restore on SQLite", () => {
  // A small change log, so that early commits fall out of the window during the test.
  const source = join(dir, "live.db");
  let recorder: Recorder;
  let info: Awaited<ReturnType<typeof backup>>;
  let early: string;

  it("takes a consistent backup while a writer commits atomic pairs", async () => {
    const kv = await openKv(source, { changeLog: { size: 300 }, durability: "normal" });
    recorder = new Recorder(kv);
    // 24 MB of values: the copy takes several steps, with commits landing between them.
    early = (await recorder.commit([[["first"], 1]])) as string;
    await seed(recorder, 1200, 20_000);
    await kv.queue("jobs").enqueue({ job: "welcome" });
    // 400 commits first, so the earliest have left the change log's window of 300.
    const { result, concurrent } = await underWrites(
      recorder,
      () => backup(kv, join(dir, "backup.db")),
      400,
    );
    info = result;
    expect(concurrent).toBeGreaterThan(0);
    // More commits after the backup, so the source has moved on.
    await underWrites(recorder, async () => {
      while (recorder.commits.length < 1200) await new Promise((r) => setTimeout(r, 5));
    });
    await kv.close();

    expect(readdirSync(dir).filter((name) => name.includes("partial"))).toEqual([]);
    const copy = await openKv(join(dir, "backup.db"));
    try {
      expect(await copy.currentVersionstamp()).toBe(info.versionstamp);
      await expectStateAt(copy, recorder, info.versionstamp);
    } finally {
      await copy.close();
    }
  });

  it("restores the backup into a new file: the same entries, lists and queues work", async () => {
    const target = join(dir, "restored.db");
    const restored = await restore(join(dir, "backup.db"), target);
    expect(restored).toMatchObject({ versionstamp: info.versionstamp, entries: info.entries });
    const kv = await openKv(target);
    try {
      await expectStateAt(kv, recorder, info.versionstamp);
      const seeds = [];
      for await (const entry of kv.list({ prefix: ["seed"] }, { limit: 5 })) seeds.push(entry);
      expect(seeds.map((e) => e.key)).toEqual([0, 1, 2, 3, 4].map((j) => ["seed", j]));
      const message = await kv.queue("jobs").dequeue({ visibilityTimeout: 10_000 });
      expect(message?.value).toEqual({ job: "welcome" });
      await kv.set(["after", "restore"], true);
    } finally {
      await kv.close();
    }
  });

  it("refuses to overwrite an existing target, and replaces it with force", async () => {
    const target = join(dir, "taken.db");
    writeFileSync(target, "keep me");
    const error = await refusal(restore(join(dir, "backup.db"), target));
    expect(error.code).toBe("ALREADY_EXISTS");
    expect(error.message).toMatch(/taken\.db already exists/);
    expect(readFileSync(target, "utf8")).toBe("keep me");
    expect((await refusal(backup(source, target))).code).toBe("ALREADY_EXISTS");
    await restore(join(dir, "backup.db"), target, { force: true });
    const kv = await openKv(target);
    expect(await kv.currentVersionstamp()).toBe(info.versionstamp);
    await kv.close();
  });

  it("restores exactly the state as of a versionstamp within the window", async () => {
    // Commits of the writer loop before the backup, of pairs and deletes, late in the window.
    const within = recorder.commits.filter((c) => c.versionstamp < info.versionstamp).slice(-40);
    for (const at of [within[0]!.versionstamp, within[25]!.versionstamp]) {
      const target = join(dir, `at-${at}.db`);
      const restored = await restore(join(dir, "backup.db"), target, { at });
      expect(restored.versionstamp).toBe(at);
      const kv = await openKv(target);
      try {
        await expectStateAt(kv, recorder, at);
        // Versionstamps go on after the backup's: none is reused with another meaning.
        const { versionstamp } = await kv.set(["new"], 1);
        expect(versionstamp > info.versionstamp).toBe(true);
      } finally {
        await kv.close();
      }
    }
    // The backup's own versionstamp is the backup itself.
    const same = join(dir, "at-head.db");
    await restore(join(dir, "backup.db"), same, { at: info.versionstamp });
    const kv = await openKv(same);
    await expectStateAt(kv, recorder, info.versionstamp);
    await kv.close();
  });

  it("refuses a versionstamp outside the window, or after the backup, leaving nothing", async () => {
    const old = await refusal(restore(join(dir, "backup.db"), join(dir, "old.db"), { at: early }));
    expect(old.code).toBe("COMPACTED");
    expect(old.message).toMatch(
      /outside the backup's change-log window, which reaches back to [0-9a-f]{20}/,
    );
    expect(old.details?.oldest).toMatch(/^[0-9a-f]{20}$/);
    expect(existsSync(join(dir, "old.db"))).toBe(false);

    const later = recorder.commits.at(-1)!.versionstamp;
    const future = await refusal(
      restore(join(dir, "backup.db"), join(dir, "future.db"), { at: later }),
    );
    expect(future.code).toBe("INVALID_VERSIONSTAMP");
    expect(existsSync(join(dir, "future.db"))).toBe(false);

    const bad = await refusal(
      restore(join(dir, "backup.db"), join(dir, "bad.db"), { at: "yesterday" }),
    );
    expect(bad.code).toBe("INVALID_VERSIONSTAMP");
    expect(readdirSync(dir).filter((name) => name.includes("partial"))).toEqual([]);
  });

  it("refuses a source that is missing or not a Cellar database", async () => {
    expect((await refusal(restore(join(dir, "missing.db"), join(dir, "x.db")))).code).toBe(
      "NOT_FOUND",
    );
    const absent = await refusal(backup(join(dir, "missing.db"), join(dir, "m.db")));
    expect(absent.code).toBe("NOT_FOUND");
    expect(existsSync(join(dir, "missing.db"))).toBe(false);
    writeFileSync(join(dir, "text.db"), "not a database at all, just text".repeat(200));
    const notDb = await refusal(restore(join(dir, "text.db"), join(dir, "y.db")));
    expect(notDb.code).toBe("STORAGE_ERROR");
    expect(existsSync(join(dir, "y.db"))).toBe(false);
    const mixed = await refusal(restore(join(dir, "backup.db"), "postgres://u@h/db?schema=x"));
    expect(mixed.message).toMatch(/restore keeps the backend/);
  });
});
