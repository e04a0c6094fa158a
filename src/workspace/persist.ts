/**
 * A Y.Doc persisted in Cellar: an update log compacted into a snapshot, as y-leveldb and
 * y-indexeddb keep theirs, written through the one commit pipeline, so it lives wherever the
 * `Kv` does (memory, a SQLite file, PostgreSQL) and reaches every process that shares it.
 *
 * Keys, under the `Kv` given (a workspace's namespace view):
 * - `["ydoc", "u", <versionstamp>]` → a Yjs update (`Uint8Array`), or the array of updates a
 *   tick made, in order, written by one commit (kept apart: merging many small updates costs
 *   more than the commit); the key ends with its commit's versionstamp, so the log is in commit
 *   order.
 * - `["ydoc", "snapshot"]` → `{ update, merged, generation, parts }`: the compacted state.
 *   `update` is the whole state when `parts` is 1; a state larger than one value may hold is cut
 *   into `parts` pieces, `update` the first and the others at `["ydoc", "chunk", generation, i]`
 *   (i = 1…parts-1), written and replaced in the same commit as the head.
 *
 * Loading reads the snapshot, then the log. A compaction rebuilds the state from what is stored
 * (snapshot and log, never the doc in memory, which may hold updates not yet written) in a fresh
 * doc, so deleted content is garbage-collected, then writes the new snapshot and deletes the log
 * entries it merged in one atomic commit that checks the snapshot's versionstamp: of processes
 * compacting at once one wins and the others' commits fail, harmlessly.
 *
 * Other processes' commits (another `openKv` of the same SQLite file, another server on the same
 * PostgreSQL database) arrive through `kv.subscribe(["ydoc", REST])` and are applied with the
 * {@link PERSIST} origin, which the writer skips, so nothing is written twice. The subscription
 * starts at the versionstamp taken before the load reads anything: a compaction that lands
 * between the reads reaches the doc as an event, so no update falls in a gap.
 */
import * as Y from "yjs";
import type { KvKey } from "../codec/key.js";
import type { AtomicOperation } from "../core/atomic.js";
import { type KvEvent, REST } from "../core/events/index.js";
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import type { KvCommitResult, KvEntry } from "../core/types.js";
import { warn } from "../core/warn.js";
import { KvError } from "../errors.js";

/** The transaction origin of updates that came from the database: they are not written again. */
export const PERSIST: unique symbol = Symbol.for("cellar.workspace.persist");

export interface PersistOptions {
  /** The doc to load into and persist (default: a new `Y.Doc`). Content it already holds is written. */
  readonly doc?: Y.Doc;
  /** Compact once the log holds this many updates (default 500)… */
  readonly compactAfterUpdates?: number;
  /** …or this many bytes (default 1 MiB). */
  readonly compactAfterBytes?: number;
  /**
   * Called when a write fails (it is tried again, with a growing pause up to 5 s, until it
   * succeeds or the doc is closed) or an update read from the database cannot be applied.
   * Default: a process warning.
   */
  readonly onError?: (error: Error) => void;
}

export interface PersistedDoc {
  readonly doc: Y.Doc;
  /**
   * Resolves once every update the doc made before the call is committed: from then on it
   * survives a restart. Rejects if the commit that carried one failed (it is still retried).
   */
  flush(): Promise<void>;
  /** Merges the log into the snapshot now (it also happens on its own past the thresholds). */
  compact(): Promise<void>;
  /**
   * Writes what is pending and stops following the database. The doc stays usable, no longer
   * persisted; destroying it is the caller's business.
   */
  close(): Promise<void>;
}

/** A log entry: one update, or a tick's updates in order. */
type LogValue = Uint8Array | readonly Uint8Array[];

const updatesOf = (value: LogValue): readonly Uint8Array[] =>
  value instanceof Uint8Array ? [value] : value;
const sizeOf = (value: LogValue): number =>
  updatesOf(value).reduce((n, update) => n + update.byteLength, 0);
/** What the serialization of a log array adds per update, at most. */
const PER_UPDATE = 16;

interface SnapshotHead {
  readonly update: Uint8Array;
  /** How many log entries were merged into snapshots so far. */
  readonly merged: number;
  readonly generation: number;
  readonly parts: number;
}

const ROOT = "ydoc";
const HEAD: KvKey = [ROOT, "snapshot"];
const LOG: KvKey = [ROOT, "u"];
const CHUNK = "chunk";
const chunkKey = (generation: number, i: number): KvKey => [ROOT, CHUNK, generation, i];

const DEFAULT_UPDATES = 500;
const DEFAULT_BYTES = 1024 * 1024;
/** Largest piece written in one value: a value limit less what a key and framing may take. */
const MAX_PIECE = 1024 * 1024;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;
/** Reads that found a snapshot replaced under them before giving up. */
const MAX_TORN_READS = 10;

/**
 * Opens the doc stored under `kv` (created empty if nothing is stored): loads the snapshot and
 * the log, then persists every local update and applies every update other processes commit.
 *
 * @example
 * const stored = await openPersistedDoc(kv.namespace("workspace-app"));
 * stored.doc.getMap("kv").set("theme", "dark");
 * await stored.flush(); // committed: survives a restart
 * await stored.close();
 */
export async function openPersistedDoc(
  kv: Kv,
  options: PersistOptions = {},
): Promise<PersistedDoc> {
  const persisted = new Persistence(kv, options);
  await persisted.open();
  return persisted;
}

interface Written {
  readonly bytes: Uint8Array;
  seen: boolean;
}

interface Waiter {
  readonly upTo: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

class Persistence implements PersistedDoc {
  readonly doc: Y.Doc;
  readonly #kv: Kv;
  readonly #compactAfterUpdates: number;
  readonly #compactAfterBytes: number;
  readonly #piece: number;
  readonly #onError: (error: Error) => void;
  /**
   * The log's entries and bytes as this process has seen them commit and go, to know when to
   * compact: an estimate (an entry the load read may come again as an event), never a list.
   */
  #logEntries = 0;
  #logBytes = 0;
  /**
   * This process's own commits, whose events need not be applied: those under way, known by
   * their bytes (a driver may deliver a commit's events before the commit resolves), and those
   * that resolved before their event came, by versionstamp.
   */
  readonly #writing = new Set<Written>();
  readonly #written = new Set<string>();
  /** Pieces of snapshots arriving as events, by commit versionstamp. */
  #pieces: { versionstamp: string; chunks: Map<number, Uint8Array> } | null = null;
  #pending: Uint8Array[] = [];
  #queued = 0;
  #committed = 0;
  #waiters: Waiter[] = [];
  #writer = false;
  #compacting: Promise<void> | null = null;
  #unsubscribe: () => void = () => {};
  #closed = false;

  constructor(kv: Kv, options: PersistOptions) {
    this.#kv = kv;
    this.doc = options.doc ?? new Y.Doc();
    this.#compactAfterUpdates = positive(
      "compactAfterUpdates",
      options.compactAfterUpdates ?? DEFAULT_UPDATES,
    );
    this.#compactAfterBytes = positive(
      "compactAfterBytes",
      options.compactAfterBytes ?? DEFAULT_BYTES,
    );
    this.#onError =
      options.onError ?? ((error) => warn(`cellar: a persisted Y.Doc: ${error.message}`));
    const { maxValueSize } = coreOf(kv).core.limits;
    // The snapshot head's other fields and the value's framing take well under 256 bytes.
    this.#piece = Math.min(MAX_PIECE, maxValueSize - 256);
    if (this.#piece < 1024) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `a persisted Y.Doc needs values of at least 1280 bytes; this database's limit is ${maxValueSize}`,
      );
    }
  }

  async open(): Promise<void> {
    const local = this.doc.store.clients.size > 0 ? Y.encodeStateAsUpdate(this.doc) : null;
    this.doc.on("update", this.#onUpdate);
    try {
      await this.#follow();
    } catch (error) {
      this.doc.off("update", this.#onUpdate);
      throw error;
    }
    if (local) this.#enqueue(local);
    this.#compactIfDue();
  }

  flush(): Promise<void> {
    if (this.#committed >= this.#queued) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ upTo: this.#queued, resolve, reject });
    });
  }

  async compact(): Promise<void> {
    await this.flush();
    await this.#compacting;
    while (!(await this.#compactOnce()));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.doc.off("update", this.#onUpdate);
    try {
      await this.flush();
      await this.#compacting;
    } finally {
      this.#closed = true;
      this.#unsubscribe();
    }
  }

  /** Loads what is stored and subscribes to what other processes commit after it. */
  async #follow(): Promise<void> {
    const since = await this.#kv.currentVersionstamp();
    const { snapshot, log } = await this.#read();
    this.#logEntries = 0;
    this.#logBytes = 0;
    Y.transact(
      this.doc,
      () => {
        if (snapshot) Y.applyUpdate(this.doc, snapshot, PERSIST);
        for (const entry of log) {
          for (const update of updatesOf(entry.value)) Y.applyUpdate(this.doc, update, PERSIST);
          this.#logged(1, sizeOf(entry.value));
        }
      },
      PERSIST,
    );
    this.#unsubscribe = this.#kv.subscribe<unknown>([ROOT, REST], (event) => this.#onEvent(event), {
      since,
      onError: (error) => this.#onSubscriptionError(error),
    });
  }

  /** The stored snapshot and log, the snapshot's pieces all of one generation. */
  async #read(): Promise<{ snapshot: Uint8Array | null; log: KvEntry<LogValue>[] }> {
    for (let attempt = 0; attempt < MAX_TORN_READS; attempt++) {
      const head = (await this.#kv.get<SnapshotHead>(HEAD)).value;
      const snapshot = head ? await this.#readSnapshot(head) : null;
      if (head && !snapshot) continue;
      const log: KvEntry<LogValue>[] = [];
      for await (const entry of this.#kv.list<LogValue>({ prefix: LOG })) log.push(entry);
      return { snapshot, log };
    }
    throw new KvError(
      "UNAVAILABLE",
      `the Y.Doc's snapshot was replaced ${MAX_TORN_READS} times while it was read`,
    );
  }

  /** The whole state a head stands for, or `null` when its pieces were replaced meanwhile. */
  async #readSnapshot(head: SnapshotHead): Promise<Uint8Array | null> {
    if (head.parts === 1) return head.update;
    const keys = Array.from({ length: head.parts - 1 }, (_, i) => chunkKey(head.generation, i + 1));
    const pieces = [head.update];
    const { maxReadKeys } = coreOf(this.#kv).core.limits;
    for (let i = 0; i < keys.length; i += maxReadKeys) {
      const entries = await this.#kv.getMany<Uint8Array[]>(keys.slice(i, i + maxReadKeys));
      for (const entry of entries) {
        if (entry.value === null) return null;
        pieces.push(entry.value);
      }
    }
    return concat(pieces);
  }

  #onSubscriptionError(error: KvError): void {
    if (this.#closed || error.code === "DATABASE_CLOSED") return;
    // The change log no longer reaches where this doc left off: read everything again.
    this.#onError(error);
    this.#follow().catch((cause: Error) => this.#onError(cause));
  }

  #onEvent(event: KvEvent): void {
    if (this.#closed) return;
    const [, kind, a, b] = event.key;
    const value = event.entry?.value;
    if (kind === "u" && typeof a === "string") {
      if (event.type !== "set") {
        const previous = event.previous?.value;
        this.#logged(-1, previous === undefined ? 0 : -sizeOf(previous as LogValue));
        return;
      }
      const updates = updatesOf(value as LogValue);
      this.#logged(1, sizeOf(updates));
      if (this.#isOwn(event.versionstamp, updates[0]!)) return;
      for (const update of updates) this.#apply(update);
    } else if (kind === CHUNK && typeof b === "number" && event.type === "set") {
      if (this.#pieces?.versionstamp !== event.versionstamp)
        this.#pieces = { versionstamp: event.versionstamp, chunks: new Map() };
      this.#pieces.chunks.set(b, value as Uint8Array);
    } else if (kind === "snapshot" && a === undefined && event.type === "set") {
      const head = value as SnapshotHead;
      const chunks = this.#pieces?.versionstamp === event.versionstamp ? this.#pieces.chunks : null;
      this.#pieces = null;
      if (this.#isOwn(event.versionstamp, head.update)) return;
      const pieces = [head.update];
      for (let i = 1; i < head.parts; i++) {
        const piece = chunks?.get(i);
        if (!piece) {
          this.#onError(new KvError("STORAGE_ERROR", `snapshot piece ${i} is missing`));
          return;
        }
        pieces.push(piece);
      }
      this.#apply(concat(pieces));
    }
  }

  #isOwn(versionstamp: string, bytes: Uint8Array): boolean {
    if (this.#written.delete(versionstamp)) return true;
    for (const written of this.#writing) {
      if (!written.seen && equalBytes(written.bytes, bytes)) {
        written.seen = true;
        return true;
      }
    }
    return false;
  }

  /** Commits `op`, which writes `bytes`, as this process's own. */
  async #commitOwn(op: AtomicOperation, bytes: Uint8Array): Promise<KvCommitResult | null> {
    const written: Written = { bytes, seen: false };
    this.#writing.add(written);
    try {
      const result = await op.commit();
      if (!result.ok) return null;
      if (!written.seen) this.#written.add(result.versionstamp);
      return result;
    } finally {
      this.#writing.delete(written);
    }
  }

  #apply(update: Uint8Array): void {
    try {
      Y.applyUpdate(this.doc, update, PERSIST);
    } catch (error) {
      this.#onError(error as Error);
    }
  }

  #logged(entries: number, bytes: number): void {
    this.#logEntries = Math.max(0, this.#logEntries + entries);
    this.#logBytes = Math.max(0, this.#logBytes + bytes);
  }

  readonly #onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === PERSIST) return;
    this.#enqueue(update);
  };

  #enqueue(update: Uint8Array): void {
    this.#pending.push(update);
    this.#queued++;
    if (this.#writer) return;
    this.#writer = true;
    void this.#write();
  }

  /** Writes pending updates, a tick's worth per commit (as many as fit), until none is left. */
  async #write(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    let pause = RETRY_FIRST_MS;
    // The writer stops in the same step as its last look at the queue: an update queued later
    // starts a new one.
    for (;;) {
      if (this.#pending.length === 0) {
        this.#writer = false;
        return;
      }
      const batch = this.#takeBatch();
      try {
        await this.#writeBatch(batch);
      } catch (error) {
        this.#pending = [...batch, ...this.#pending];
        for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
        if (this.#closed || (error instanceof KvError && error.code === "DATABASE_CLOSED")) {
          this.#writer = false;
          return;
        }
        this.#onError(error as Error);
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, RETRY_MAX_MS);
        continue;
      }
      pause = RETRY_FIRST_MS;
      this.#committed += batch.length;
      // In the order they were asked: their callers (a server answering, then broadcasting)
      // keep the order of the updates.
      const done = this.#waiters.filter((waiter) => waiter.upTo <= this.#committed);
      this.#waiters = this.#waiters.filter((waiter) => waiter.upTo > this.#committed);
      for (const waiter of done) waiter.resolve();
      this.#compactIfDue();
    }
  }

  /** The pending updates one log value holds: as many as fit, at least one. */
  #takeBatch(): Uint8Array[] {
    let bytes = 0;
    let count = 0;
    for (const update of this.#pending) {
      bytes += update.byteLength + PER_UPDATE;
      if (count > 0 && bytes > this.#piece) break;
      count++;
    }
    return this.#pending.splice(0, count);
  }

  async #writeBatch(batch: Uint8Array[]): Promise<void> {
    const first = batch[0]!;
    if (batch.length === 1 && first.byteLength > this.#piece) {
      // Larger than one log value may be: it goes straight into the snapshot.
      while (!(await this.#compactOnce(first)));
      return;
    }
    const value: LogValue = batch.length === 1 ? first : batch;
    const op = this.#kv.atomic().set([...LOG, this.#kv.commitVersionstamp()], value);
    const result = await this.#commitOwn(op, first);
    if (!result) throw new KvError("CONFLICT", "the update's commit failed");
  }

  #compactIfDue(): void {
    if (this.#compacting || this.#closed) return;
    if (this.#logEntries < this.#compactAfterUpdates && this.#logBytes < this.#compactAfterBytes)
      return;
    this.#compacting = this.#compactOnce()
      .then(
        () => {},
        (error: Error) => this.#onError(error),
      )
      .finally(() => {
        this.#compacting = null;
      });
  }

  /**
   * Rebuilds the snapshot from what is stored (and `extra`, an update too large for the log),
   * deleting the log entries merged into it. Resolves `false` when another process's compaction
   * won the race.
   */
  async #compactOnce(extra?: Uint8Array): Promise<boolean> {
    const kv = this.#kv;
    const headEntry = await kv.get<SnapshotHead>(HEAD);
    const head = headEntry.value;
    const stored = head ? await this.#readSnapshot(head) : null;
    if (head && !stored) return false;
    const log: KvKey[] = [];
    const scratch = new Y.Doc();
    try {
      if (stored) Y.applyUpdate(scratch, stored);
      for await (const entry of kv.list<LogValue>({ prefix: LOG })) {
        for (const update of updatesOf(entry.value)) Y.applyUpdate(scratch, update);
        log.push(entry.key);
      }
      if (extra) Y.applyUpdate(scratch, extra);
      const state = Y.encodeStateAsUpdate(scratch);
      const pieces = split(state, this.#piece);
      const generation = (head?.generation ?? 0) + 1;
      const { maxMutations } = coreOf(kv).core.limits;
      const oldParts = head ? head.parts - 1 : 0;
      const room = maxMutations - pieces.length - oldParts;
      if (room < 0) {
        throw new KvError(
          "VALUE_TOO_LARGE",
          `the Y.Doc's state (${state.byteLength} bytes) takes more than ${maxMutations} values`,
        );
      }
      const op = kv.atomic().check({ key: HEAD, versionstamp: headEntry.versionstamp });
      op.set(HEAD, {
        update: pieces[0]!,
        merged: (head?.merged ?? 0) + log.length + (extra ? 1 : 0),
        generation,
        parts: pieces.length,
      } satisfies SnapshotHead);
      for (let i = 1; i < pieces.length; i++) op.set(chunkKey(generation, i), pieces[i]!);
      for (let i = 1; i <= oldParts; i++) op.delete(chunkKey(generation - 1, i));
      for (const key of log.slice(0, room)) op.delete(key);
      if (!(await this.#commitOwn(op, pieces[0]!))) return false;
      // What did not fit in the commit is in the snapshot already: delete it in batches.
      for (let i = room; i < log.length; i += maxMutations) {
        const rest = kv.atomic();
        for (const key of log.slice(i, i + maxMutations)) rest.delete(key);
        await rest.commit();
      }
      return true;
    } finally {
      scratch.destroy();
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new KvError("INVALID_ARGUMENT", `${name} must be a positive integer, got ${value}`);
  return value;
}

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  if (bytes.byteLength <= size) return [bytes];
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) pieces.push(bytes.slice(i, i + size));
  return pieces;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function concat(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0]!;
  const out = new Uint8Array(pieces.reduce((n, piece) => n + piece.byteLength, 0));
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.byteLength;
  }
  return out;
}
