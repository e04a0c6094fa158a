/** Backups of a PostgreSQL schema into a new schema under concurrent writes; restores; point in time. */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { backup, KvError, openKv, restore } from "../../src/index.js";
import { createApp } from "../../src/server/index.js";
import { expectStateAt, Recorder, seed, underWrites } from "./scenario.js";

const POSTGRES = process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const prefix = `backup_${randomBytes(4).toString("hex")}`;
const url = (name: string) => `${POSTGRES}?schema=${prefix}_${name}`;

afterAll(async () => {
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  const { rows } = await client.query<{ nspname: string }>(
    "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
    [`${prefix}%`],
  );
  for (const { nspname } of rows) await client.query(`DROP SCHEMA "${nspname}" CASCADE`);
  await client.end();
});

async function refusal(promise: Promise<unknown>): Promise<KvError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KvError);
  return error as KvError;
}

async function schemaExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: POSTGRES });
  await client.connect();
  const { rowCount } = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [
    `${prefix}_${name}`,
  ]);
  await client.end();
  return rowCount === 1;
}

describe("backup and restore on PostgreSQL", () => {
  let recorder: Recorder;
  let info: Awaited<ReturnType<typeof backup>>;
  let early: string;

  it("copies the schema from one snapshot while a writer commits atomic pairs", async () => {
    const kv = await openKv(url("live"), { changeLog: { size: 200 } });
    recorder = new Recorder(kv);
    early = await recorder.commit([[["first"], 1]]);
    await seed(recorder, 300, 2000);
    await kv.queue("jobs").enqueue({ job: "welcome" });
    const { result, concurrent } = await underWrites(recorder, () => backup(kv, url("bk")), 300);
    info = result;
    expect(concurrent).toBeGreaterThan(0);
    expect(info.target).toBe(`${prefix}_bk`);
    await kv.close();

    const copy = await openKv(url("bk"));
    try {
      // Each process that opens a PostgreSQL database takes a versionstamp to register.
      expect((await copy.currentVersionstamp()) > info.versionstamp).toBe(true);
      await expectStateAt(copy, recorder, info.versionstamp);
    } finally {
      await copy.close();
    }
  });

  it("restores into a new schema: the same entries, lists and queues work", async () => {
    const restored = await restore(url("bk"), url("restored"));
    // Opening the backup schema above took a versionstamp; the entries are those of the backup.
    expect(restored.entries).toBe(info.entries);
    const kv = await openKv(url("restored"));
    try {
      await expectStateAt(kv, recorder, info.versionstamp);
      const message = await kv.queue("jobs").dequeue({ visibilityTimeout: 10_000 });
      expect(message?.value).toEqual({ job: "welcome" });
      await kv.queue("jobs").enqueue({ job: "next" });
      await kv.set(["after", "restore"], true);
    } finally {
      await kv.close();
    }
  });

  it("refuses to overwrite an existing schema, and replaces a Cellar one with force", async () => {
    const taken = await refusal(restore(url("bk"), url("restored")));
    expect(taken.code).toBe("ALREADY_EXISTS");
    expect(taken.message).toMatch(/already exists/);
    await restore(url("bk"), url("restored"), { force: true });
    const kv = await openKv(url("restored"));
    expect((await kv.get(["after", "restore"])).value).toBeNull();
    await kv.close();
  });

  it("restores exactly the state as of a versionstamp within the window", async () => {
    const within = recorder.commits.filter((c) => c.versionstamp < info.versionstamp).slice(-30);
    const at = within[3]!.versionstamp;
    const restored = await restore(url("bk"), url("at"), { at });
    expect(restored.versionstamp).toBe(at);
    const kv = await openKv(url("at"));
    try {
      await expectStateAt(kv, recorder, at);
      const { versionstamp } = await kv.set(["new"], 1);
      expect(versionstamp > info.versionstamp).toBe(true);
    } finally {
      await kv.close();
    }
  });

  it("refuses a versionstamp outside the window, leaving no schema behind", async () => {
    const old = await refusal(restore(url("bk"), url("old"), { at: early }));
    expect(old.code).toBe("COMPACTED");
    expect(old.message).toMatch(/outside the backup's change-log window/);
    expect(await schemaExists("old")).toBe(false);
    const missing = await refusal(restore(url("nothing"), url("none")));
    expect(missing.code).toBe("NOT_FOUND");
    const elsewhere = await refusal(
      restore(url("bk"), "postgres://postgres@127.0.0.1:5432/other?schema=x"),
    );
    expect(elsewhere.message).toMatch(/same database/);
  });

  it("answers 501 on a server over PostgreSQL, and refuses a file target for it", async () => {
    const kv = await openKv(url("live"));
    try {
      const { app } = createApp(kv, { ui: false });
      const response = await app.request("/api/admin/backup");
      expect(response.status).toBe(501);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error).toMatchObject({ code: "UNSUPPORTED" });
      expect(body.error.message).toMatch(/new schema of the same database/);
      const file = await refusal(backup(kv, "/tmp/never-written.db"));
      expect(file.code).toBe("UNSUPPORTED");
    } finally {
      await kv.close();
    }
  });
});
