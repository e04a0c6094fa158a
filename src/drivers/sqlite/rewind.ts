/**
 * Point-in-time restore on a copy of a SQLite database: the copy is taken back to the state it
 * had just after commit `at` by undoing, newest first, every commit after it, from the change
 * log. Each log row holds the entry a commit left and the live entry before it (with metadata
 * and versionstamp), so undoing a commit puts back exactly what its keys held; a commit is
 * undone whole, so an atomic write is undone all or nothing.
 */
import type Database from "better-sqlite3";
import { ENCODING_TAG } from "../../codec/value.js";
import {
  assertVersionstamp,
  formatVersionstamp,
  parseVersionstamp,
} from "../../codec/versionstamp.js";
import { KvError } from "../../errors.js";
import { metaFromLog, unpackChanges } from "./packed-changes.js";
import { kvRow, UPSERT_KV } from "./schema.js";

/**
 * Takes the database `db` (a copy, opened for writing) back to the state after commit `at`.
 * Entries become exactly what they were then; each key's revision history loses the revisions
 * made after `at` (revisions pruned or forgotten since are not brought back). The commit
 * counter stays at the copy's head, so no versionstamp of the original is ever reused with
 * another meaning, and the change log starts afresh there: a subscription resuming from before
 * it is told `COMPACTED`. Throws `COMPACTED` when `at` is older than the log's window and
 * `INVALID_VERSIONSTAMP` when the copy never reached it.
 */
export function rewind(db: Database.Database, at: string): void {
  assertVersionstamp(at);
  const target = parseVersionstamp(at);
  const meta = db.prepare("SELECT value FROM cellar_meta WHERE name = ?").pluck();
  const head = meta.get("version") as number;
  const pruned = meta.get("pruned") as number;
  if (target > head) {
    throw new KvError(
      "INVALID_VERSIONSTAMP",
      `cannot restore as of ${at}: the backup holds the database as of ${formatVersionstamp(head)}, which is earlier`,
    );
  }
  if (target < pruned) {
    throw new KvError(
      "COMPACTED",
      `cannot restore as of ${at}: it is outside the backup's change-log window, which reaches back to ${formatVersionstamp(pruned)}; restore from an older backup`,
      { details: { oldest: formatVersionstamp(pruned) } },
    );
  }
  // Read whole first: better-sqlite3 runs no other statement while an iterator is open.
  const undo = db
    .prepare("SELECT changes FROM cellar_log WHERE vs > ? ORDER BY vs DESC")
    .pluck()
    .all(target) as Buffer[];
  const remove = db.prepare("DELETE FROM cellar_kv WHERE key = ?");
  const put = db.prepare(UPSERT_KV);
  const dropRevisions = db.prepare("DELETE FROM cellar_history WHERE key = ? AND vs >= ?");
  db.transaction(() => {
    for (const packed of undo) {
      for (const { key, type, previous } of unpackChanges(packed)) {
        // null: the commit changed nothing a reader could see (a delete of an absent key).
        if (type === null) continue;
        if (previous === null) {
          remove.run(key);
          continue;
        }
        // The entry's hash is its value's, which the row does not store (schema 4).
        const m = metaFromLog(previous.meta, "");
        const data =
          previous.encoding === ENCODING_TAG.json
            ? previous.value.toString("utf8")
            : previous.value;
        put.run(kvRow(key, data, previous.encoding, previous.versionstamp, previous.expiresAt, m));
        // The entry is current again: its archived copy and every later revision go.
        dropRevisions.run(key, previous.versionstamp);
      }
    }
    db.prepare("DELETE FROM cellar_history WHERE vs > ?").run(target);
    db.exec("DELETE FROM cellar_log");
    db.prepare("UPDATE cellar_meta SET value = ? WHERE name = 'pruned'").run(head);
  })();
}
