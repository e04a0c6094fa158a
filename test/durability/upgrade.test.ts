/**
 * A SQLite file written by the release before schema 4 (`test/fixtures/schema-3.db`, made by
 * that release with the writes listed in `upgrade-view.ts`'s keys) opens in this release, is
 * upgraded in place, and shows a user exactly what the old release showed (`schema-3.json`):
 * entries, metadata and hashes, history, and the change feed from its first commit. Writes go
 * on from there: history continues, and a subscription resumes across the upgrade.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { type Kv, openKv, REST } from "../../src/index.js";
import { describeDatabase, plain } from "./upgrade-view.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures");
const expected = JSON.parse(readFileSync(join(FIXTURES, "schema-3.json"), "utf8")) as {
  head: string;
  entries: { key: unknown[]; metadata: { dataHash: string } }[];
};
const OPTIONS = { history: { depth: 5, keepValues: [["audit"]] } };

let dir: string;
let open: Kv[] = [];

async function upgraded(): Promise<{ kv: Kv; path: string }> {
  dir = mkdtempSync(join(tmpdir(), "cellar-upgrade-"));
  const path = join(dir, "old.db");
  copyFileSync(join(FIXTURES, "schema-3.db"), path);
  const kv = await openKv(path, OPTIONS);
  open.push(kv);
  return { kv, path };
}

afterEach(async () => {
  for (const kv of open) await kv.close();
  open = [];
  rmSync(dir, { recursive: true, force: true });
});

describe("a schema 3 SQLite file", () => {
  it("shows after the upgrade exactly what the release that wrote it showed", async () => {
    const { kv, path } = await upgraded();
    const view = JSON.parse(JSON.stringify(await describeDatabase(kv, REST, expected.head)));
    expect(view).toEqual(expected);
    const raw = new Database(path, { readonly: true });
    try {
      const schema = raw.prepare("SELECT value FROM cellar_meta WHERE name = 'schema'").pluck();
      expect(schema.get()).toBe(4);
      const columns = raw.prepare("SELECT name FROM pragma_table_info('cellar_kv')").pluck().all();
      expect(columns).not.toContain("data_hash");
      const tables = raw
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .pluck()
        .all();
      expect(tables).toContain("cellar_log");
      expect(tables).not.toContain("cellar_changes");
      expect(raw.prepare("PRAGMA integrity_check").pluck().get()).toBe("ok");
    } finally {
      raw.close();
    }
  });

  it("goes on from there: history continues and a subscription resumes across the upgrade", async () => {
    const { kv, path } = await upgraded();
    const before = await kv.get(["users", 2], { metadata: true });
    const seen: unknown[] = [];
    kv.subscribe([REST], (event) => seen.push(plain(event)), { since: expected.head });
    await kv.set(["users", 2], { id: 2, name: "upgraded" }, { modifiedBy: "carol" });
    await expect.poll(() => seen.length).toBeGreaterThan(0);
    const event = seen.find(
      (e) => JSON.stringify((e as { key: unknown }).key) === '["users",2]',
    ) as {
      previous: { metadata: { version: number; dataHash: string } };
      entry: { metadata: { version: number } };
    };
    expect(event.previous.metadata).toMatchObject({
      version: 3,
      dataHash: before.metadata!.dataHash,
    });
    expect(event.entry.metadata.version).toBe(4);
    const history = await kv.history(["users", 2]);
    expect(history.map((r) => [r.version, r.modifiedBy])).toEqual([
      [4, "carol"],
      [3, "bob"],
      [2, "alice"],
      [1, null],
    ]);
    const old = expected.entries.find((e) => JSON.stringify(e.key) === '["users",2]')!;
    expect(history[1]!.dataHash).toBe(old.metadata.dataHash);
    // Opening the upgraded file again changes nothing.
    await kv.close();
    open = [];
    const again = await openKv(path, OPTIONS);
    open.push(again);
    expect((await again.history(["users", 2])).map((r) => r.dataHash)).toEqual(
      history.map((r) => r.dataHash),
    );
  });
});
