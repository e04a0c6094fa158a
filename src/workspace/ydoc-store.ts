/**
 * How a persisted Y.Doc lies in a `Kv` (see `persist.ts` for how it is kept in step):
 *
 * - `["ydoc", "u", <versionstamp>]` → a Yjs update (`Uint8Array`), or the array of updates a
 *   tick made, in order, written by one commit (kept apart: merging many small updates costs
 *   more than the commit); the key ends with its commit's versionstamp, so the log is in commit
 *   order.
 * - `["ydoc", "snapshot"]` → `{ update, merged, generation, parts }`: the compacted state.
 *   `update` is the whole state when `parts` is 1; a state larger than one value may hold is cut
 *   into `parts` pieces, `update` the first and the others at `["ydoc", "chunk", generation, i]`
 *   (i = 1…parts-1), written and replaced in the same commit as the head.
 *
 * A compaction rebuilds the state from what is stored (snapshot and log, never a doc in memory,
 * which may hold updates not yet written) in a fresh doc, so deleted content is
 * garbage-collected, and writes the new snapshot and deletes the log entries it merged in one
 * atomic commit that checks the snapshot's versionstamp.
 */
import * as Y from "yjs";
import type { KvKey } from "../codec/key.js";
import type { AtomicOperation } from "../core/atomic.js";
import { type KvEvent, type KvPattern, REST } from "../core/events/index.js";
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import type { KvEntry } from "../core/types.js";
import { KvError } from "../errors.js";

/** A log entry: one update, or a tick's updates in order. */
export type LogValue = Uint8Array | readonly Uint8Array[];

export const updatesOf = (value: LogValue): readonly Uint8Array[] =>
  value instanceof Uint8Array ? [value] : value;

export const sizeOf = (value: LogValue): number =>
  updatesOf(value).reduce((n, update) => n + update.byteLength, 0);

export interface SnapshotHead {
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

/** Every key of the layout, for a subscription. */
export const YDOC_PATTERN: KvPattern = [ROOT, REST];

/** Largest piece written in one value: a value limit less what a key and framing may take. */
const MAX_PIECE = 1024 * 1024;
/** What the serialization of a log array adds per update, at most. */
const PER_UPDATE = 16;
/** Reads that found a snapshot replaced under them before giving up. */
const MAX_TORN_READS = 10;

/** What one event of the layout says. */
export type StoredChange =
  | { readonly kind: "logged"; readonly updates: readonly Uint8Array[] }
  | { readonly kind: "unlogged"; readonly bytes: number }
  | { readonly kind: "piece"; readonly index: number; readonly bytes: Uint8Array }
  | { readonly kind: "snapshot"; readonly head: SnapshotHead }
  | null;

/** Reads an event of {@link YDOC_PATTERN}. */
export function changeOf(event: KvEvent): StoredChange {
  const [, kind, a, b] = event.key;
  const value = event.entry?.value;
  if (kind === "u" && typeof a === "string") {
    if (event.type === "set") return { kind: "logged", updates: updatesOf(value as LogValue) };
    const previous = event.previous?.value;
    return { kind: "unlogged", bytes: previous === undefined ? 0 : sizeOf(previous as LogValue) };
  }
  if (event.type !== "set") return null;
  if (kind === CHUNK && typeof b === "number")
    return { kind: "piece", index: b, bytes: value as Uint8Array };
  if (kind === "snapshot" && a === undefined)
    return { kind: "snapshot", head: value as SnapshotHead };
  return null;
}

/** A compaction's commit, ready to go, and the merged log entries it could not delete. */
export interface Compaction {
  readonly op: AtomicOperation;
  /** The snapshot's first piece, by which its event is recognised. */
  readonly first: Uint8Array;
  /** Keys to delete after the commit, in batches of at most one commit each. */
  readonly rest: readonly KvKey[][];
}

/** The reads and writes of one stored Y.Doc. */
export class YDocStore {
  readonly #kv: Kv;
  /** The largest piece of a snapshot, or log value, in bytes. */
  readonly piece: number;

  constructor(kv: Kv) {
    this.#kv = kv;
    const { maxValueSize } = coreOf(kv).core.limits;
    // The snapshot head's other fields and the value's framing take well under 256 bytes.
    this.piece = Math.min(MAX_PIECE, maxValueSize - 256);
    if (this.piece < 1024) {
      throw new KvError(
        "INVALID_ARGUMENT",
        `a persisted Y.Doc needs values of at least 1280 bytes; this database's limit is ${maxValueSize}`,
      );
    }
  }

  /** The stored snapshot and log, the snapshot's pieces all of one generation. */
  async read(): Promise<{ snapshot: Uint8Array | null; log: KvEntry<LogValue>[] }> {
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

  /** How many of `pending`'s first updates one log value holds: as many as fit, at least one. */
  fits(pending: readonly Uint8Array[]): number {
    let bytes = 0;
    let count = 0;
    for (const update of pending) {
      bytes += update.byteLength + PER_UPDATE;
      if (count > 0 && bytes > this.piece) break;
      count++;
    }
    return count;
  }

  /** The commit that appends `batch` (which {@link fits}) to the log. */
  append(batch: readonly Uint8Array[]): AtomicOperation {
    const value: LogValue = batch.length === 1 ? batch[0]! : batch;
    return this.#kv.atomic().set([...LOG, this.#kv.commitVersionstamp()], value);
  }

  /**
   * The commit of a compaction of what is stored (and `extra`, an update too large for the
   * log); `null` when the snapshot was replaced while it was read.
   */
  async compaction(extra?: Uint8Array): Promise<Compaction | null> {
    const kv = this.#kv;
    const headEntry = await kv.get<SnapshotHead>(HEAD);
    const head = headEntry.value;
    const stored = head ? await this.#readSnapshot(head) : null;
    if (head && !stored) return null;
    const log: KvKey[] = [];
    const scratch = new Y.Doc();
    let state: Uint8Array;
    try {
      if (stored) Y.applyUpdate(scratch, stored);
      for await (const entry of kv.list<LogValue>({ prefix: LOG })) {
        for (const update of updatesOf(entry.value)) Y.applyUpdate(scratch, update);
        log.push(entry.key);
      }
      if (extra) Y.applyUpdate(scratch, extra);
      state = Y.encodeStateAsUpdate(scratch);
    } finally {
      scratch.destroy();
    }
    const pieces = split(state, this.piece);
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
    const rest: KvKey[][] = [];
    for (let i = room; i < log.length; i += maxMutations) rest.push(log.slice(i, i + maxMutations));
    return { op, first: pieces[0]!, rest };
  }

  /** Deletes log entries a committed compaction merged but could not delete itself. */
  async deleteMerged(rest: readonly KvKey[][]): Promise<void> {
    for (const keys of rest) {
      const op = this.#kv.atomic();
      for (const key of keys) op.delete(key);
      await op.commit();
    }
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
}

function split(bytes: Uint8Array, size: number): Uint8Array[] {
  if (bytes.byteLength <= size) return [bytes];
  const pieces: Uint8Array[] = [];
  for (let i = 0; i < bytes.byteLength; i += size) pieces.push(bytes.slice(i, i + size));
  return pieces;
}

export function concat(pieces: readonly Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0]!;
  const out = new Uint8Array(pieces.reduce((n, piece) => n + piece.byteLength, 0));
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.byteLength;
  }
  return out;
}
