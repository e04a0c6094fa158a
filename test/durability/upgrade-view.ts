/**
 * What a user sees of the database in `test/fixtures/schema-3.db`, as plain JSON: every entry
 * with its metadata, each key's history, and the change feed from the first commit. The same
 * function describes the file as the release that wrote it saw it (`schema-3.json`) and as this
 * release sees it after upgrading the file in place; it takes what it needs as arguments, so it
 * runs against either release's code (it imports types only).
 */
import type { Kv, KvKey, KvPattern } from "../../src/index.js";

/** The keys the fixture writes: their history is part of the view. */
export const FIXTURE_KEYS: KvKey[] = [
  ["users", 1],
  ["users", 2],
  ["users", 3],
  ["audit", "a"],
  ["counter"],
  ["bytes"],
  ["gone"],
];

/** JSON for any value a key or an entry holds (bigints, bytes, dates, maps, sets, undefined). */
export function plain(value: unknown): unknown {
  if (typeof value === "bigint") return { $bigint: String(value) };
  if (value === undefined) return { $undefined: true };
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("hex") };
  if (value instanceof Date) return { $date: value.toISOString() };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [plain(k), plain(v)]) };
  if (value instanceof Set) return { $set: [...value].map(plain) };
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object") {
    if ("value" in value && typeof (value as { value: unknown }).value === "bigint")
      return { $u64: String((value as { value: bigint }).value) };
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/**
 * The view of `kv`; the feed runs up to `head` (default: the current one), so commits made
 * since — the expiry sweeper's — stay out of it.
 */
export async function describeDatabase(
  kv: Kv,
  rest: KvPattern[number],
  until?: string,
): Promise<unknown> {
  const entries: unknown[] = [];
  for await (const entry of kv.list({ prefix: [] }, { metadata: true })) entries.push(plain(entry));
  const history: unknown[] = [];
  for (const key of FIXTURE_KEYS)
    history.push([plain(key), plain(await kv.history(key, { limit: 100 }))]);
  const head = until ?? (await kv.currentVersionstamp());
  const feed: unknown[] = [];
  await new Promise<void>((resolve, reject) => {
    const stop = kv.subscribe(
      [rest],
      (event) => {
        feed.push(plain(event));
        if (event.versionstamp === head) {
          stop();
          resolve();
        }
      },
      { since: "00000000000000000000", onError: reject },
    );
  });
  return { head, entries, history, feed };
}
