/**
 * Close and reopen of a SQLite file: values, metadata, history, versionstamps and expiry all
 * come back from the file alone.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Kv, type KvKey, KvU64, type OpenKvOptions, openKv } from "../../src/index.js";

let dir = "";
let path = "";
const open: Kv[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cellar-reopen-"));
  path = join(dir, "reopen.db");
});

afterEach(async () => {
  for (const kv of open.splice(0)) await kv.close();
  rmSync(dir, { recursive: true, force: true });
});

async function reopen(options: OpenKvOptions = {}): Promise<Kv> {
  const kv = await openKv(path, { durability: "full", ...options });
  open.push(kv);
  return kv;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function samples(): [KvKey, unknown][] {
  return [
    [
      ["v", "map"],
      new Map<unknown, unknown>([
        [1, "one"],
        ["two", { n: 2 }],
        [3n, [new Date(0)]],
      ]),
    ],
    [["v", "date"], new Date("2024-02-29T12:34:56.789Z")],
    [["v", "bigint"], -(2n ** 100n) + 7n],
    [["v", "bytes"], new Uint8Array([0, 1, 2, 254, 255])],
    [["v", "u64"], new KvU64(2n ** 64n - 1n)],
    [
      ["v", "json"],
      { name: "cellar", tags: ["a", "b"], deep: { list: [1, 2.5, null, true], empty: {} } },
    ],
    [
      ["v", "mixed"],
      { when: new Date(1_700_000_000_000), ids: new Set(["x", "y"]), sizes: new Map([["k", 1n]]) },
    ],
    [["v", "string"], "héllo\u0000wörld"],
    [
      ["v", "array"],
      [1, "two", [3, [4]]],
    ],
  ];
}

async function writeAll(kv: Kv, entries: [KvKey, unknown][]): Promise<string[]> {
  const stamps: string[] = [];
  for (const [key, value] of entries) stamps.push((await kv.set(key, value)).versionstamp);
  return stamps;
}

async function newestVersionstamp(kv: Kv): Promise<string> {
  const stamps: string[] = [];
  for await (const entry of kv.list({ prefix: [] })) stamps.push(entry.versionstamp);
  return stamps.sort().at(-1) ?? "";
}

function rawRowCount(key: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare("SELECT count(*) FROM cellar_kv WHERE instr(key, ?) > 0")
      .pluck()
      .get(Buffer.from(key)) as number;
  } finally {
    db.close();
  }
}

describe("SQLite close and reopen", () => {
  it("returns values of every type with their versionstamps", async () => {
    const entries = samples();
    const kv = await reopen();
    const stamps = await writeAll(kv, entries);
    await kv.close();

    const again = await reopen();
    for (const [i, [key, value]] of entries.entries()) {
      const entry = await again.get(key);
      expect(entry.value, JSON.stringify(key)).toEqual(value);
      expect(entry.versionstamp).toBe(stamps[i]);
    }
    expect((await again.get(["v", "map"])).value).toBeInstanceOf(Map);
    expect((await again.get(["v", "date"])).value).toBeInstanceOf(Date);
    expect(typeof (await again.get(["v", "bigint"])).value).toBe("bigint");
    expect((await again.get(["v", "bytes"])).value).toBeInstanceOf(Uint8Array);
    expect((await again.get<KvU64>(["v", "u64"])).value).toBeInstanceOf(KvU64);
    expect((await again.get<KvU64>(["v", "u64"])).value?.value).toBe(2n ** 64n - 1n);
  });

  it("commits writes still queued when close() is called", async () => {
    const kv = await reopen();
    const writes = [
      kv.set(["q", 1], "one"),
      kv.set(["q", 2], new Date(5)),
      kv.atomic().sum(["q", "n"], 3n).commit(),
    ];
    await kv.close();
    const results = await Promise.all(writes);

    const again = await reopen();
    const [one, two, n] = await again.getMany<[string, Date, KvU64]>([
      ["q", 1],
      ["q", 2],
      ["q", "n"],
    ]);
    expect(one.value).toBe("one");
    expect(two.value).toEqual(new Date(5));
    expect(n.value).toEqual(new KvU64(3n));
    expect([one.versionstamp, two.versionstamp, n.versionstamp]).toEqual(
      results.map((r) => (r.ok ? r.versionstamp : null)),
    );
  });

  it("keeps metadata and history, values included under keepValues", async () => {
    const history = { keepValues: [["audit"]] };
    const kv = await reopen({ history });
    for (let i = 1; i <= 12; i++) {
      await kv.set(
        ["doc"],
        { rev: i },
        { tags: [`t${i}`], modifiedBy: `user${i % 3}`, comment: `edit ${i}` },
      );
      await kv.set(["audit", "x"], new Map([["rev", i]]), { modifiedBy: "auditor" });
    }
    const before = {
      doc: await kv.get(["doc"], { metadata: true }),
      docHistory: await kv.history(["doc"]),
      audit: await kv.get(["audit", "x"], { metadata: true }),
      auditHistory: await kv.history(["audit", "x"]),
    };
    await kv.close();

    const again = await reopen({ history });
    const after = {
      doc: await again.get(["doc"], { metadata: true }),
      docHistory: await again.history(["doc"]),
      audit: await again.get(["audit", "x"], { metadata: true }),
      auditHistory: await again.history(["audit", "x"]),
    };
    expect(after).toEqual(before);
    expect(after.doc.metadata).toMatchObject({
      version: 12,
      tags: ["t12"],
      modifiedBy: "user0",
      comment: "edit 12",
      expiresAt: null,
    });
    expect(after.doc.metadata!.createdAt).toBeLessThanOrEqual(after.doc.metadata!.updatedAt);
    expect(after.docHistory.map((r) => r.version)).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
    expect(after.docHistory[0]!.versionstamp).toBe(after.doc.versionstamp);
    expect(after.docHistory[0]!.dataHash).toBe(after.doc.metadata!.dataHash);
    expect(after.docHistory.every((r) => !("value" in r))).toBe(true);
    expect(after.auditHistory.map((r) => r.value)).toEqual(
      Array.from({ length: 10 }, (_, i) => new Map([["rev", 12 - i]])),
    );
  });

  it("keeps versionstamps increasing across several reopens", async () => {
    let previous = "";
    for (let cycle = 0; cycle < 3; cycle++) {
      const kv = await reopen();
      const stamps = [
        (await kv.set(["c", cycle, "set"], cycle)).versionstamp,
        ...(await Promise.all([1, 2, 3].map((i) => kv.set(["c", cycle, i], i)))).map(
          (r) => r.versionstamp,
        ),
      ];
      const atomic = await kv
        .atomic()
        .sum(["c", "n"], 1n)
        .set(["c", cycle, "atomic"], true)
        .commit();
      expect(atomic.ok).toBe(true);
      if (atomic.ok) stamps.push(atomic.versionstamp);
      expect(stamps[0]! > previous).toBe(true);
      expect([...stamps].sort()).toEqual(stamps);
      expect(new Set(stamps).size).toBe(stamps.length);
      expect(await newestVersionstamp(kv)).toBe(stamps.at(-1));
      previous = stamps.at(-1)!;
      await kv.close();
    }
    const kv = await reopen();
    expect((await kv.get(["c", "n"])).value).toEqual(new KvU64(3n));
  });

  it("does not return an entry that expired while the file was closed", async () => {
    const kv = await reopen({ sweepInterval: 0 });
    await kv.set(["ttl", "short"], "gone soon", { expireIn: 50 });
    await kv.set(["ttl", "long"], new Date(7), { expireIn: 3_600_000 });
    const short = await kv.get(["ttl", "short"], { metadata: true });
    const long = await kv.get(["ttl", "long"], { metadata: true });
    expect(short.value).toBe("gone soon");
    await kv.close();
    await sleep(Math.max(0, short.metadata!.expiresAt! - Date.now()) + 20);

    const again = await reopen({ sweepInterval: 0 });
    // The row is still in the file: it is the read that hides it.
    expect(rawRowCount("short")).toBe(1);
    expect(await again.get(["ttl", "short"])).toEqual({
      key: ["ttl", "short"],
      value: null,
      versionstamp: null,
    });
    const listed = [];
    for await (const entry of again.list({ prefix: ["ttl"] })) listed.push(entry.key);
    expect(listed).toEqual([["ttl", "long"]]);
    expect(await again.count({ prefix: ["ttl"] })).toBe(1);
    expect(await again.get(["ttl", "long"], { metadata: true })).toEqual(long);

    expect(await again.sweepExpired()).toBe(1);
    expect(rawRowCount("short")).toBe(0);
  });
});

describe("SQLite schema 1 files", () => {
  it("keep their data, and restart a change log that could not say what changed", async () => {
    const kv = await reopen();
    const old = await kv.set(["a"], 1);
    await kv.set(["b"], 2);
    await kv.close();
    open.splice(0);
    // What schema 1 wrote: a change log of keys only.
    const raw = new Database(path);
    raw.exec(`DROP TABLE cellar_log;
      CREATE TABLE cellar_changes (vs INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (vs, key)) WITHOUT ROWID;
      INSERT INTO cellar_changes VALUES (1, x'0261000000');
      UPDATE cellar_meta SET value = 1 WHERE name = 'schema';`);
    raw.close();

    const again = await reopen();
    expect((await again.get(["b"])).value).toBe(2);
    const refused = await new Promise<string | undefined>((resolve) => {
      again.subscribe(["a"], () => {}, {
        since: old.versionstamp,
        onError: (error) => resolve(error.code),
      });
    });
    expect(refused).toBe("COMPACTED");
    const after = await again.currentVersionstamp();
    const seen: unknown[] = [];
    again.subscribe(["a"], (event) => seen.push([event.previous?.value, event.entry?.value]), {
      since: after,
    });
    await again.set(["a"], 10);
    await expect.poll(() => seen).toEqual([[1, 10]]);
  });
});
