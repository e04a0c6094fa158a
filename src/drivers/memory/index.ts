/**
 * The in-memory driver: a B+ tree of entries keyed by their encoded key. Keys are held as latin1
 * strings, one character per byte, so JavaScript's string order is the byte order.
 * Everything runs synchronously, which makes every read a snapshot and every write atomic.
 */

import { BTree } from "../../codec/btree.js";
import { latin1Encode } from "../../codec/bytes.js";
import { keyId } from "../../codec/key.js";
import { formatVersionstamp, parseVersionstamp } from "../../codec/versionstamp.js";
import {
  type Applied,
  applyMutation,
  DEFAULT_CHANGE_LOG_SIZE,
  DEFAULT_HISTORY_DEPTH,
  isLive,
  revisionOf,
  type StoredEntry,
  sha256,
  writtenKey,
} from "../../contract/apply.js";
import { type Filter, rawMatches } from "../../contract/filter.js";
import type {
  AtomicWrite,
  ChangeEvent,
  CommitResult,
  DriverOptions,
  KeyChange,
  KeyRange,
  KvDriver,
  Mutation,
  RawEntry,
  RawRevision,
  ReadOptions,
  ReadRange,
} from "../../contract/index.js";
import { KvError } from "../../errors.js";
import { expiryChange, inKeyOrder, keyChange } from "../shared/key-changes.js";
import { isPoint } from "../shared/range.js";
import { unknownIndex } from "../shared/search-text.js";
import { MemoryQueues } from "./queues.js";
import type { MemorySearch } from "./search.js";

const fromId = latin1Encode;

/**
 * Opens a database that lives in this process's memory and ends with it.
 *
 * @example
 * const kv = await openKv(":memory:"); // uses memoryDriver()
 */
export function memoryDriver(options: DriverOptions = {}): KvDriver {
  const entries = new BTree<string, StoredEntry>();
  // The same entries by id: point lookups in a hash map are several times faster than in the tree.
  const byId = new Map<string, StoredEntry>();
  const histories = new Map<string, RawRevision[]>();
  // Entries with an expiry, ordered by it, so the sweeper never scans the whole tree.
  const expiries = new BTree<[number, string], undefined>(undefined, (a, b) =>
    a[0] !== b[0] ? a[0] - b[0] : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
  );
  const listeners = new Set<(change: ChangeEvent) => void>();
  const depth = options.historyDepth ?? DEFAULT_HISTORY_DEPTH;
  const logSize = options.changeLogSize ?? DEFAULT_CHANGE_LOG_SIZE;
  const logAge = options.changeLogAge ?? 0;
  // The change log, oldest first, with each commit's time; `pruned` is the highest version no
  // longer in it.
  const log: ChangeEvent[] = [];
  const logTimes: number[] = [];
  let pruned = 0;
  const hash = options.hash ?? sha256;
  let version = 0;
  let closed = false;
  // Loaded with the first search index: MiniSearch costs nothing to databases without one.
  let search: MemorySearch | null = null;

  const assertOpen = () => {
    if (closed) throw new KvError("DATABASE_CLOSED", "the database is closed");
  };

  const toRaw = (key: Uint8Array, entry: StoredEntry, withMeta: boolean | undefined): RawEntry => ({
    key,
    value: entry.value,
    versionstamp: entry.versionstamp,
    expiresAt: entry.expiresAt,
    ...(withMeta ? { meta: entry.meta } : {}),
  });

  const live = (id: string, now: number): StoredEntry | null => {
    const entry = byId.get(id);
    return entry && isLive(entry.expiresAt, now) ? entry : null;
  };

  const readRange = (range: ReadRange, options: ReadOptions): RawEntry[] => {
    const out: RawEntry[] = [];
    if (range.limit <= 0) return out;
    const start = keyId(range.start);
    if (isPoint(range.start, range.end)) {
      const entry = byId.get(start);
      if (entry && isLive(entry.expiresAt, options.now) && rawMatches(range.where, entry.value))
        out.push(toRaw(range.start, entry, options.metadata));
      return out;
    }
    const end = keyId(range.end);
    if (start >= end) return out;
    const visit = (id: string, entry: StoredEntry): { break: true } | undefined => {
      if (isLive(entry.expiresAt, options.now) && rawMatches(range.where, entry.value))
        out.push(toRaw(fromId(id), entry, options.metadata));
      return out.length >= range.limit ? { break: true } : undefined;
    };
    if (!range.reverse) {
      entries.forRange(start, end, false, visit);
    } else {
      for (const [id, entry] of entries.entriesReversed(end, undefined, true)) {
        if (id < start) break;
        if (visit(id, entry)) break;
      }
    }
    return out;
  };

  const store = (id: string, entry: StoredEntry | null) => {
    const previous = byId.get(id);
    if (previous?.expiresAt != null) expiries.delete([previous.expiresAt, id]);
    if (entry === null) {
      entries.delete(id);
      byId.delete(id);
      return;
    }
    entries.set(id, entry);
    byId.set(id, entry);
    if (entry.expiresAt !== null) expiries.set([entry.expiresAt, id], undefined);
  };

  const record = (id: string, applied: Applied) => {
    store(id, applied.entry);
    if (applied.dropHistory) histories.delete(id);
    if (applied.archive.length > 0) {
      const list = histories.get(id) ?? [];
      list.push(...applied.archive);
      if (list.length > depth) list.splice(0, list.length - depth);
      histories.set(id, list);
    }
  };

  const notify = (change: ChangeEvent) => {
    for (const listener of listeners) listener(change);
  };

  /** Logs and reports a commit made at `now`; the log keeps `logSize` commits, and `logAge` ms. */
  const emit = (change: ChangeEvent, now: number) => {
    log.push(change);
    logTimes.push(now);
    if (log.length > logSize * 2) {
      let cut = log.length - logSize;
      while (cut > 0 && logAge > 0 && logTimes[cut - 1]! > now - logAge) cut--;
      if (cut > 0) {
        const dropped = log.splice(0, cut);
        logTimes.splice(0, cut);
        pruned = parseVersionstamp(dropped.at(-1)!.versionstamp);
      }
    }
    notify(change);
  };

  const countLive = (range: KeyRange & { where?: Filter }, now: number): number => {
    let n = 0;
    entries.forRange(keyId(range.start), keyId(range.end), false, (_id, entry) => {
      if (isLive(entry.expiresAt, now) && rawMatches(range.where, entry.value)) n++;
    });
    return n;
  };

  /** Applies checks and mutations as one commit; null when a check fails. */
  const commit = (
    checks: AtomicWrite["checks"],
    mutations: readonly Mutation[],
    now: number,
    rangeChecks: AtomicWrite["rangeChecks"] = [],
  ) => {
    for (const check of checks) {
      const current = live(keyId(check.key), now);
      if ((current?.versionstamp ?? null) !== check.versionstamp) return null;
    }
    for (const check of rangeChecks) if (countLive(check, now) !== check.count) return null;
    const versionstamp = formatVersionstamp(version + 1);
    const context = {
      now,
      versionstamp,
      hash,
      ...(options.maxValueSize && { maxValueSize: options.maxValueSize }),
    };
    // Compute every mutation before touching the tree, so a throwing mutation changes nothing.
    const staged = new Map<string, { before: StoredEntry | null; after: StoredEntry | null }>();
    const applied: [string, Applied][] = [];
    for (const mutation of mutations) {
      const id = keyId(writtenKey(mutation, versionstamp));
      const state = staged.get(id) ?? { before: byId.get(id) ?? null, after: null };
      const current = staged.has(id) ? state.after : state.before;
      const result = applyMutation(current, mutation, context);
      state.after = result.entry;
      staged.set(id, state);
      applied.push([id, result]);
    }
    version++;
    for (const [id, result] of applied) record(id, result);
    const keys: Uint8Array[] = [];
    const changes: KeyChange[] = [];
    for (const [id, { before, after }] of staged) {
      const key = fromId(id);
      keys.push(key);
      const change = keyChange(key, before, after, now);
      if (change) changes.push(change);
    }
    return { versionstamp, keys, entries: inKeyOrder(changes) };
  };

  const queues = new MemoryQueues(
    (mutations, now) => {
      emit(commit([], mutations, now)!, now);
    },
    (queue) =>
      notify({ versionstamp: formatVersionstamp(version), keys: [], queues: [fromId(queue)] }),
  );

  return {
    snapshotReadSync(ranges, options) {
      assertOpen();
      return ranges.map((range) => readRange(range, options));
    },

    async snapshotRead(ranges, options) {
      return this.snapshotReadSync!(ranges, options);
    },

    async count(range: KeyRange, options) {
      assertOpen();
      return countLive(range, options.now);
    },

    async atomicWrite(write: AtomicWrite): Promise<CommitResult | null> {
      assertOpen();
      const docs = write.searchDocs;
      if (docs && search) search.check(docs);
      const done = commit(write.checks, write.mutations, write.now, write.rangeChecks);
      if (!done) return null;
      if (docs && search) search.apply(docs, keyId);
      const enqueued = (write.enqueues ?? []).map((e) =>
        queues.enqueue(keyId(e.queue), e, write.now),
      );
      if (done.keys.length > 0) emit(done, write.now);
      return { versionstamp: done.versionstamp, ...(enqueued.length > 0 && { enqueued }) };
    },

    async dequeue(queue, { now, visibilityTimeout, limit }) {
      assertOpen();
      return queues.dequeue(keyId(queue), now, visibilityTimeout, limit);
    },

    async settle(queue, token, settlement, now) {
      assertOpen();
      return queues.settle(keyId(queue), token, settlement, now);
    },

    async queueStats(queue, now) {
      assertOpen();
      return queues.stats(keyId(queue), now);
    },

    async listDead(queue, { limit, after }) {
      assertOpen();
      return queues.listDead(keyId(queue), limit, after);
    },

    async getDead(queue, id) {
      assertOpen();
      return queues.getDead(keyId(queue), id);
    },

    async requeueDead(queue, ids, now) {
      assertOpen();
      return queues.requeueDead(keyId(queue), ids, now);
    },

    async deleteDead(queue, ids) {
      assertOpen();
      return queues.deleteDead(keyId(queue), ids);
    },

    async history(key, { limit, now, withValues }) {
      assertOpen();
      const id = keyId(key);
      const current = live(id, now);
      const archived = [...(histories.get(id) ?? [])].reverse();
      const all = current ? [revisionOf(current, withValues), ...archived] : archived;
      return all.slice(0, Math.min(limit, depth));
    },

    async deleteExpired(now, limit) {
      assertOpen();
      queues.pruneDedup(now);
      const expired: string[] = [];
      for (const [[expiresAt, id]] of expiries.entries()) {
        if (expiresAt > now || expired.length >= limit) break;
        expired.push(id);
      }
      if (expired.length === 0) return 0;
      const keys = expired.map(fromId);
      const changes = keys.map((key, i) => expiryChange(key, byId.get(expired[i]!)!));
      for (const id of expired) {
        store(id, null);
        histories.delete(id);
      }
      search?.forget(expired);
      version++;
      emit({ versionstamp: formatVersionstamp(version), keys, entries: inKeyOrder(changes) }, now);
      return expired.length;
    },

    async purge(prefix, now) {
      assertOpen();
      const prefixId = keyId(prefix);
      const removed: string[] = [];
      const changes: KeyChange[] = [];
      for (const [id, entry] of entries.entries(prefixId)) {
        if (!id.startsWith(prefixId)) break;
        removed.push(id);
        const change = keyChange(fromId(id), entry, null, now);
        if (change) changes.push(change);
      }
      for (const id of removed) store(id, null);
      for (const id of histories.keys()) if (id.startsWith(prefixId)) histories.delete(id);
      search?.forgetPrefix(prefixId);
      queues.purge(prefixId);
      if (removed.length > 0) {
        version++;
        const keys = removed.map(fromId);
        emit({ versionstamp: formatVersionstamp(version), keys, entries: changes }, now);
      }
      return changes.length;
    },

    async readChanges(after, limit) {
      assertOpen();
      const from = parseVersionstamp(after);
      let lo = 0;
      let hi = log.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (parseVersionstamp(log[mid]!.versionstamp) <= from) lo = mid + 1;
        else hi = mid;
      }
      return {
        changes: log.slice(lo, lo + limit),
        truncated: from < pruned,
        head: formatVersionstamp(version),
        oldest: formatVersionstamp(pruned),
      };
    },

    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async close() {
      closed = true;
      listeners.clear();
    },

    async createSearchIndex(spec) {
      assertOpen();
      const { MemorySearch } = await import("./search.js");
      search ??= new MemorySearch();
      search.create(spec);
    },

    async dropSearchIndex(id) {
      assertOpen();
      search?.drop(id);
    },

    async search(request) {
      assertOpen();
      if (!search) throw unknownIndex(request.index);
      const { now, where, metadata } = request;
      const range = { start: keyId(request.range.start), end: keyId(request.range.end) };
      return search.search(request, range, (id) => {
        const entry = live(id, now);
        return entry && rawMatches(where, entry.value) ? toRaw(fromId(id), entry, metadata) : null;
      });
    },

    async listQueues(range, limit) {
      assertOpen();
      return queues.names(keyId(range.start), keyId(range.end), limit).map(fromId);
    },
  };
}
