/**
 * The PostgreSQL driver's change log (`cellar_changes`): one row per key a commit wrote, saying
 * what the commit did to it (`KeyChange`), so the log replays commits exactly as the live feed
 * reported them. This module maps between those rows and change events; the commit statement
 * writes them (see `commit-sql.ts`).
 *
 * Values are the bulk of a row, and the commit statement has most of them at hand: the entry a
 * commit left is usually the row it upserts, and the entry before it usually the stored row.
 * A logged change leaves such a value out ({@link loggedColumns}) and the statement takes it
 * from there, so a commit sends each value once and never reads one back to log it.
 */
import { keyId } from "../../codec/key.js";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import type { StoredEntry } from "../../contract/apply.js";
import type { ChangeEvent, EntryMeta, KeyChange, RawEntry } from "../../contract/index.js";
import { CHANGE_TYPE_CODE, CHANGE_TYPES, metaFromText, metaToText } from "../shared/key-changes.js";
import { rawValueOf, valueColumns } from "./rows.js";

/** The columns a log read selects, as {@link ChangeRow} names them. */
export const CHANGE_COLUMNS =
  "vs, key, type, value_json, value_bin, encoding, expires_at, meta, prev_value_json, prev_value_bin, prev_encoding, prev_vs, prev_expires_at, prev_meta";

/** A log row; `type` is NULL for a written key whose visible state did not change. */
export interface ChangeRow {
  vs: number;
  key: Buffer;
  type: number | null;
  value_json: string | null;
  value_bin: Buffer | null;
  encoding: number | null;
  expires_at: number | null;
  meta: string | null;
  prev_value_json: string | null;
  prev_value_bin: Buffer | null;
  prev_encoding: number | null;
  prev_vs: number | null;
  prev_expires_at: number | null;
  prev_meta: string | null;
}

/** Log rows (ordered by version, then key) as one change event per commit. */
export function groupChanges(rows: readonly ChangeRow[]): ChangeEvent[] {
  const events: { versionstamp: string; keys: Uint8Array[]; entries: KeyChange[] }[] = [];
  for (const row of rows) {
    const versionstamp = formatVersionstamp(row.vs);
    let last = events.at(-1);
    if (last?.versionstamp !== versionstamp) {
      last = { versionstamp, keys: [], entries: [] };
      events.push(last);
    }
    last.keys.push(row.key);
    if (row.type !== null) last.entries.push(keyChangeOf(row, versionstamp));
  }
  return events;
}

function keyChangeOf(row: ChangeRow, versionstamp: string): KeyChange {
  const { key } = row;
  const entry: RawEntry | null =
    row.meta === null
      ? null
      : {
          key,
          value: rawValueOf(row.value_json, row.value_bin, row.encoding!),
          versionstamp,
          expiresAt: row.expires_at,
          meta: metaFromText(row.meta),
        };
  const previous: RawEntry | null =
    row.prev_meta === null
      ? null
      : {
          key,
          value: rawValueOf(row.prev_value_json, row.prev_value_bin, row.prev_encoding!),
          versionstamp: formatVersionstamp(row.prev_vs!),
          expiresAt: row.prev_expires_at,
          meta: metaFromText(row.prev_meta),
        };
  return { key, type: CHANGE_TYPES[row.type!]!, entry, previous };
}

/** One key a commit wrote, with what it did to it (null: nothing a reader could see). */
export interface LoggedChange {
  readonly version: number;
  /** The commit's time, by which the log is pruned when it keeps commits for a while. */
  readonly at: number;
  readonly key: Uint8Array;
  readonly change: KeyChange | null;
}

/**
 * The column arrays of the commit statement's `logged` part. A value is left out (its columns
 * NULL) when the statement has it: the entry when it is what the batch upserts for its key
 * (its final state in the batch, as `staged` holds it), the entry before when it predates the
 * batch (made at version `base` or earlier), so it is the stored row, read in the statement's
 * snapshot.
 */
export function loggedColumns(
  rows: readonly LoggedChange[],
  base: number,
  staged: ReadonlyMap<string, { readonly entry: StoredEntry | null }>,
): unknown[] {
  const entries = rows.map((r) => r.change?.entry ?? null);
  const previous = rows.map((r) => r.change?.previous ?? null);
  const values = entries.map((entry, i) =>
    sentValue(entry, staged.get(keyId(rows[i]!.key))?.entry?.versionstamp === entry?.versionstamp),
  );
  const prevValues = previous.map((entry) =>
    sentValue(entry, entry !== null && parseVersionstamp(entry.versionstamp) <= base),
  );
  return [
    rows.map((r) => r.version),
    rows.map((r) => r.key),
    rows.map((r) => (r.change ? CHANGE_TYPE_CODE[r.change.type] : null)),
    rows.map((r) => r.at),
    values.map((v) => v?.json ?? null),
    values.map((v) => v?.bin ?? null),
    values.map((v) => v?.encoding ?? null),
    entries.map((e) => e?.expiresAt ?? null),
    entries.map((e) => (e ? metaText(e.meta!) : null)),
    prevValues.map((v) => v?.json ?? null),
    prevValues.map((v) => v?.bin ?? null),
    prevValues.map((v) => v?.encoding ?? null),
    previous.map((e) => (e ? parseVersionstamp(e.versionstamp) : null)),
    previous.map((e) => e?.expiresAt ?? null),
    previous.map((e) => (e ? metaText(e.meta!) : null)),
  ];
}

/** The value columns a log row sends for `entry`: none when the statement `has` it. */
function sentValue(entry: RawEntry | null, has: boolean): ReturnType<typeof valueColumns> | null {
  return entry === null || has ? null : valueColumns(entry.value);
}

/**
 * Metadata texts made, by metadata object. The entry before a commit is, on cached state, the
 * very entry an earlier commit logged as its result, so its text is made once, not twice.
 */
const metaTexts = new WeakMap<EntryMeta, string>();

function metaText(meta: EntryMeta): string {
  let text = metaTexts.get(meta);
  if (text === undefined) {
    text = metaToText(meta);
    metaTexts.set(meta, text);
  }
  return text;
}
