/**
 * A Y.Doc persisted in Cellar: an update log compacted into a snapshot, as y-leveldb and
 * y-indexeddb keep theirs (the layout is in `ydoc-store.ts`), written through the one commit
 * pipeline, so it lives wherever the `Kv` does (memory, a SQLite file, PostgreSQL) and reaches
 * every process that shares it.
 *
 * Loading reads the snapshot, then the log. Local updates are written a tick's worth per commit;
 * past the thresholds the log is compacted, and of processes compacting at once one wins and the
 * others' commits fail, harmlessly.
 *
 * Other processes' commits (another `openKv` of the same SQLite file, another server on the same
 * PostgreSQL database) arrive through `kv.subscribe(["ydoc", REST])` and are applied with the
 * {@link PERSIST} origin, which the writer skips, so nothing is written twice. The subscription
 * starts at the versionstamp taken before the load reads anything: a compaction that lands
 * between the reads reaches the doc as an event, so no update falls in a gap.
 */
import * as Y from "yjs";
import type { AtomicOperation } from "../core/atomic.js";
import type { KvEvent } from "../core/events/index.js";
import type { Kv } from "../core/kv.js";
import type { KvCommitResult } from "../core/types.js";
import { warn } from "../core/warn.js";
import { KvError } from "../errors.js";
import { changeOf, concat, sizeOf, updatesOf, YDOC_PATTERN, YDocStore } from "./ydoc-store.js";

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

const DEFAULT_UPDATES = 500;
const DEFAULT_BYTES = 1024 * 1024;
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;

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
  readonly #store: YDocStore;
  readonly #compactAfterUpdates: number;
  readonly #compactAfterBytes: number;
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
    this.#store = new YDocStore(kv);
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
    const { snapshot, log } = await this.#store.read();
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
    this.#unsubscribe = this.#kv.subscribe(YDOC_PATTERN, (event) => this.#onEvent(event), {
      since,
      onError: (error) => this.#onSubscriptionError(error),
    });
  }

  #onSubscriptionError(error: KvError): void {
    if (this.#closed || error.code === "DATABASE_CLOSED") return;
    // The change log no longer reaches where this doc left off: read everything again.
    this.#onError(error);
    this.#follow().catch((cause: Error) => this.#onError(cause));
  }

  #onEvent(event: KvEvent): void {
    if (this.#closed) return;
    const change = changeOf(event);
    if (change?.kind === "unlogged") this.#logged(-1, -change.bytes);
    else if (change?.kind === "logged") {
      this.#logged(1, sizeOf(change.updates));
      if (this.#isOwn(event.versionstamp, change.updates[0]!)) return;
      for (const update of change.updates) this.#apply(update);
    } else if (change?.kind === "piece") {
      if (this.#pieces?.versionstamp !== event.versionstamp)
        this.#pieces = { versionstamp: event.versionstamp, chunks: new Map() };
      this.#pieces.chunks.set(change.index, change.bytes);
    } else if (change?.kind === "snapshot") {
      const { head } = change;
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
      const batch = this.#pending.splice(0, this.#store.fits(this.#pending));
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

  async #writeBatch(batch: Uint8Array[]): Promise<void> {
    const first = batch[0]!;
    if (batch.length === 1 && first.byteLength > this.#store.piece) {
      // Larger than one log value may be: it goes straight into the snapshot.
      while (!(await this.#compactOnce(first)));
      return;
    }
    const result = await this.#commitOwn(this.#store.append(batch), first);
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
    const compaction = await this.#store.compaction(extra);
    if (!compaction || !(await this.#commitOwn(compaction.op, compaction.first))) return false;
    // What did not fit in the commit is in the snapshot already.
    await this.#store.deleteMerged(compaction.rest);
    return true;
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new KvError("INVALID_ARGUMENT", `${name} must be a positive integer, got ${value}`);
  return value;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
