/**
 * The client store's state, with no storage and no socket: the replica (the server's entries as
 * last heard, in key order), the outbox (local writes not yet answered, in the order they were
 * made) and the view a reader sees (the replica with the outbox applied on top).
 *
 * Version-aware reconciliation: the replica takes a server entry for a key only when its
 * versionstamp is newer than the one it holds (deletions included: a deleted key keeps its
 * deletion's versionstamp while it matters), so answers and changes that arrive late or out of
 * order never bring an older version back. A key with pending writes shows the newest of them
 * until the server answers the last one; then it shows the server's entry for that write or a
 * later one.
 *
 * Every change is recorded for the storage (`takeChanges`), and reported to the listener with
 * the key and why it changed.
 */
import { BTree } from "../codec/btree.js";
import { toHex } from "../codec/bytes.js";
import { encodeKey, type KvKey, startsWith } from "../codec/key.js";
import type { KvEntryMetadata } from "../core/types.js";
import { keyFromJson, keyToJson, valueFromJson, valueToJson } from "../wire/json.js";
import type { SyncEntry, SyncMetadata } from "../wire/sync.js";
import type {
  ClientEntry,
  ClientEvent,
  ClientMutation,
  OutboxWrite,
  StorageChanges,
  StoredState,
  SyncConflict,
  SyncWriteError,
} from "./types.js";

/** A replica entry: the server's entry, or its deletion (kept while newer than the resume point). */
interface Held {
  readonly key: KvKey;
  readonly value: unknown;
  readonly versionstamp: string;
  readonly deleted: boolean;
  readonly metadata?: SyncMetadata;
}

/** An outbox write as the replica holds it: `base` is updated as earlier writes are answered. */
interface Pending {
  id: number;
  mutations: ClientMutation[];
  checks: { key: KvKey; versionstamp: string | null }[];
  base: (string | null)[];
  createdAt: number;
  state: "pending" | "failed";
  error?: SyncWriteError;
  /** Answered as applied before (a resend): shown until the feed reaches this versionstamp. */
  awaiting?: string;
  /** Absolute expiry of each set, fixed when the write was made. */
  expiresAt: (number | null)[];
}

const idOf = (key: KvKey) => toHex(encodeKey(key));

type Listener = (event: ClientEvent) => void;

export class Replica {
  readonly #held = new BTree<string, Held>();
  /** Pending writes by id, in order. */
  readonly #outbox = new Map<number, Pending>();
  /** Per key id: the ids of the pending writes that write it, oldest first. */
  readonly #writers = new Map<string, number[]>();
  /** The view's entry objects, made once per change so readers get the same object. */
  readonly #shown = new Map<string, ClientEntry>();
  /** The held deletions, by key id: their versionstamps. */
  readonly #tombstones = new Map<string, string>();
  #changes: {
    put: Map<string, string>;
    remove: Set<string>;
    clear: boolean;
    outboxPut: Map<number, string>;
    outboxRemove: Set<number>;
    meta: Record<string, string>;
  } = emptyChanges();
  #nextId = 1;
  #cursor: string | null = null;
  #revision = 0;
  /** During a full reload: the keys the snapshot or live changes have touched. */
  #reload: Set<string> | null = null;
  readonly conflicts: SyncConflict[] = [];

  constructor(
    private readonly listener: Listener,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads a saved state. */
  load(state: StoredState): void {
    for (const { id, json } of state.entries) {
      const held = decodeHeld(json);
      this.#held.set(id, held);
      if (held.deleted) this.#tombstones.set(id, held.versionstamp);
    }
    for (const { json } of state.outbox) {
      const write = decodePending(json);
      this.#outbox.set(write.id, write);
      this.#nextId = Math.max(this.#nextId, write.id + 1);
      if (write.state === "pending")
        for (const m of write.mutations) this.#addWriter(idOf(m.key), write.id);
    }
    this.#cursor = state.meta.cursor ?? null;
    if (state.meta.nextId) this.#nextId = Math.max(this.#nextId, Number(state.meta.nextId));
  }

  get revision(): number {
    return this.#revision;
  }

  /** The versionstamp every server change up to has been applied; `null` before the first sync. */
  get cursor(): string | null {
    return this.#cursor;
  }

  get pendingCount(): number {
    let n = 0;
    for (const write of this.#outbox.values())
      if (write.state === "pending" && !write.awaiting) n++;
    return n;
  }

  get failedCount(): number {
    let n = 0;
    for (const write of this.#outbox.values()) if (write.state === "failed") n++;
    return n;
  }

  /** The outbox as readers see it, oldest first. */
  outbox(): OutboxWrite[] {
    return [...this.#outbox.values()].filter((w) => !w.awaiting).map(publicWrite);
  }

  /** The pending writes to send, in order. */
  *toSend(): Generator<Pending> {
    for (const write of this.#outbox.values())
      if (write.state === "pending" && !write.awaiting) yield write;
  }

  // ---- reads ----

  /** The view's entry for `key`; the same object until the key's view changes. */
  get(key: KvKey): ClientEntry {
    const id = idOf(key);
    const shown = this.#shown.get(id);
    if (shown && !expired(shown, this.now())) return shown;
    const entry = this.#compute(id, key);
    this.#shown.set(id, entry);
    return entry;
  }

  /** The view's live entries with keys in `[start, end)` (hex ids), in key order. */
  range(start: string, end: string, reverse: boolean, limit: number): ClientEntry[] {
    // The replica's keys come in order from the tree; the few keys only pending writes name are
    // merged in, so a range costs its length, not a sort of it.
    const held: string[] = [];
    this.#held.forRange(start, end, false, (id) => {
      held.push(id);
    });
    const written = [...this.#writers.keys()]
      .filter((id) => id >= start && id < end && !this.#held.has(id))
      .sort();
    const ids: string[] = [];
    for (let h = 0, w = 0; h < held.length || w < written.length; ) {
      ids.push(
        w >= written.length || (h < held.length && held[h]! < written[w]!)
          ? held[h++]!
          : written[w++]!,
      );
    }
    if (reverse) ids.reverse();
    const out: ClientEntry[] = [];
    for (const id of ids) {
      if (out.length >= limit) break;
      let entry = this.#shown.get(id);
      if (!entry) {
        entry = this.#compute(id, null);
        this.#shown.set(id, entry);
      }
      if (entry.exists && !expired(entry, this.now())) out.push(entry);
    }
    return out;
  }

  #compute(id: string, key: KvKey | null): ClientEntry {
    const held = this.#held.get(id);
    const k = key ?? held?.key ?? this.#writtenKey(id)!;
    // A pending write rests on the live entry it was made on: a deletion is no version of it.
    const base = held && !held.deleted ? held.versionstamp : null;
    const writers = this.#writers.get(id);
    if (writers && writers.length > 0) {
      const write = this.#outbox.get(writers.at(-1)!)!;
      const index = write.mutations.findLastIndex((m) => idOf(m.key) === id);
      const m = write.mutations[index]!;
      return m.type === "delete"
        ? { key: k, exists: false, value: null, versionstamp: base, pending: true }
        : { key: k, exists: true, value: m.value, versionstamp: base, pending: true };
    }
    if (!held || held.deleted)
      return { key: k, exists: false, value: null, versionstamp: null, pending: false };
    return {
      key: k,
      exists: true,
      value: held.value,
      versionstamp: held.versionstamp,
      pending: false,
      ...(held.metadata && { metadata: held.metadata as KvEntryMetadata }),
    };
  }

  #writtenKey(id: string): KvKey | undefined {
    const writer = this.#writers.get(id)?.[0];
    return writer === undefined
      ? undefined
      : this.#outbox.get(writer)?.mutations.find((m) => idOf(m.key) === id)?.key;
  }

  // ---- local writes ----

  /** Applies a local write to the view at once and queues it; returns its outbox id. */
  write(
    mutations: ClientMutation[],
    checks: { key: KvKey; versionstamp: string | null }[],
  ): number {
    const id = this.#nextId++;
    const now = this.now();
    const write: Pending = {
      id,
      mutations,
      checks,
      base: mutations.map((m) => {
        const held = this.#held.get(idOf(m.key));
        return held && !held.deleted ? held.versionstamp : null;
      }),
      createdAt: now,
      state: "pending",
      expiresAt: mutations.map((m) =>
        m.type === "set" && m.expireIn !== undefined ? now + m.expireIn : null,
      ),
    };
    this.#outbox.set(id, write);
    this.#saveWrite(write);
    this.#changes.meta.nextId = String(this.#nextId);
    for (const m of mutations) this.#addWriter(idOf(m.key), id);
    this.#changed(
      mutations.map((m) => m.key),
      "local",
    );
    return id;
  }

  // ---- the server's messages ----

  /** A full reload begins: entries the snapshot does not list are gone at its end. */
  beginReload(): void {
    this.#reload = new Set();
  }

  /** A connection resumes without a snapshot: a reload another connection began is void. */
  cancelReload(): void {
    this.#reload = null;
  }

  /** A save failed: its changes go back, under any made since, for the next save to retry. */
  requeue(failed: StorageChanges): void {
    const now = this.#changes;
    const entries = underNewer(failed.put ?? [], failed.remove ?? [], now.put, now.remove);
    const outbox = underNewer(
      failed.outboxPut ?? [],
      failed.outboxRemove ?? [],
      now.outboxPut,
      now.outboxRemove,
    );
    this.#changes = {
      put: entries.put,
      remove: entries.remove,
      clear: now.clear || failed.clear === true,
      outboxPut: outbox.put,
      outboxRemove: outbox.remove,
      meta: { ...failed.meta, ...now.meta },
    };
  }

  /** Snapshot entries: taken unless a newer change of the key came during the reload. */
  snapshot(entries: readonly SyncEntry[]): void {
    const touched: KvKey[] = [];
    for (const entry of entries) {
      const id = idOf(entry.key);
      const held = this.#held.get(id);
      const newer = this.#reload?.has(id) && held && held.versionstamp > entry.versionstamp;
      this.#reload?.add(id);
      if (newer) continue;
      this.#hold(id, entry);
      touched.push(entry.key);
    }
    this.#changed(touched, "remote");
  }

  /** The snapshot is complete as of `versionstamp`. */
  endReload(versionstamp: string): void {
    const seen = this.#reload ?? new Set();
    this.#reload = null;
    const gone: KvKey[] = [];
    for (const [id, held] of [...this.#held.entries()]) {
      if (seen.has(id)) continue;
      this.#held.delete(id);
      this.#tombstones.delete(id);
      this.#changes.remove.add(id);
      this.#changes.put.delete(id);
      if (!held.deleted) gone.push(held.key);
    }
    this.#setCursor(versionstamp);
    this.#changed(gone, "remote");
  }

  /** A commit's changes to replicated keys. */
  changes(versionstamp: string, entries: readonly SyncEntry[]): void {
    this.#changed(this.#take(entries), "remote");
    this.#setCursor(versionstamp);
  }

  /** Every change up to `versionstamp` was sent. */
  progress(versionstamp: string): void {
    this.#setCursor(versionstamp);
  }

  /** The server applied write `id` at `versionstamp`, leaving `entries`. */
  ack(id: number, versionstamp: string, entries: readonly SyncEntry[], duplicate: boolean): void {
    const write = this.#outbox.get(id);
    if (!write) return;
    // The later writes of each key were made on this one's value: they rest on this commit.
    write.mutations.forEach((m, i) => {
      this.#rebase(idOf(m.key), id, write.base[i] ?? null, versionstamp);
    });
    if (duplicate && (this.#cursor === null || this.#cursor < versionstamp)) {
      write.awaiting = versionstamp;
      this.#changes.outboxRemove.add(id);
      return;
    }
    const taken = this.#take(entries, true);
    this.#settle(write);
    this.#changed([...taken, ...write.mutations.map((m) => m.key)], "confirmed");
  }

  /** The server kept its entries for write `id` (policy `reject`): they replace the write. */
  conflict(id: number, entries: readonly SyncEntry[], indexes: readonly number[]): SyncConflict[] {
    const write = this.#outbox.get(id);
    if (!write) return [];
    const found: SyncConflict[] = indexes.flatMap((i) => {
      const m = write.mutations[i];
      if (!m) return [];
      const server = entries.find((e) => idOf(e.key) === idOf(m.key));
      return [
        {
          write: id,
          key: m.key,
          attempted: m,
          base: write.base[i] ?? null,
          server:
            server && !server.deleted
              ? {
                  value: server.value,
                  versionstamp: server.versionstamp,
                  ...(server.metadata && { metadata: server.metadata as KvEntryMetadata }),
                }
              : { value: null, versionstamp: null },
          at: this.now(),
        },
      ];
    });
    this.conflicts.push(...found);
    const taken = this.#take(entries, true);
    this.#settle(write);
    this.#changed([...write.mutations.map((m) => m.key), ...taken], "conflict");
    return found;
  }

  /** The server refused write `id`: it stays in the outbox as failed, and leaves the view. */
  refuse(id: number, error: SyncWriteError): void {
    const write = this.#outbox.get(id);
    if (!write || write.state === "failed") return;
    this.#unwrite(write);
    write.state = "failed";
    write.error = error;
    this.#saveWrite(write);
    this.#changed(
      write.mutations.map((m) => m.key),
      "refused",
    );
  }

  /** Forgets a failed write. */
  dismiss(id: number): boolean {
    const write = this.#outbox.get(id);
    if (write?.state !== "failed") return false;
    this.#outbox.delete(id);
    this.#changes.outboxRemove.add(id);
    return true;
  }

  /** The changes to save since the last call. */
  takeChanges(): StorageChanges | null {
    const c = this.#changes;
    if (
      !c.clear &&
      c.put.size === 0 &&
      c.remove.size === 0 &&
      c.outboxPut.size === 0 &&
      c.outboxRemove.size === 0 &&
      Object.keys(c.meta).length === 0
    )
      return null;
    this.#changes = emptyChanges();
    return {
      ...(c.clear && { clear: true }),
      put: [...c.put].map(([id, json]) => ({ id, json })),
      remove: [...c.remove],
      outboxPut: [...c.outboxPut].map(([id, json]) => ({ id, json })),
      outboxRemove: [...c.outboxRemove],
      meta: c.meta,
    };
  }

  // ---- internals ----

  /**
   * Takes the entries newer than what the replica holds (or the same version with the metadata
   * an answer lacked); returns their keys. An answer's entry no newer than the resume point, for
   * a key the replica no longer holds, is one whose deletion the feed brought and the replica
   * has forgotten since: it is not taken.
   */
  #take(entries: readonly SyncEntry[], answer = false): KvKey[] {
    const taken: KvKey[] = [];
    for (const entry of entries) {
      const id = idOf(entry.key);
      this.#reload?.add(id);
      const held = this.#held.get(id);
      if (held) {
        if (held.versionstamp > entry.versionstamp) continue;
        if (held.versionstamp === entry.versionstamp && (held.metadata || !entry.metadata))
          continue;
      } else if (answer && this.#cursor !== null && entry.versionstamp <= this.#cursor) continue;
      this.#hold(id, entry);
      taken.push(entry.key);
    }
    return taken;
  }

  #hold(id: string, entry: SyncEntry): void {
    const held: Held = {
      key: entry.key,
      value: entry.deleted ? null : entry.value,
      versionstamp: entry.versionstamp,
      deleted: entry.deleted === true,
      ...(entry.metadata && { metadata: entry.metadata }),
    };
    this.#held.set(id, held);
    if (held.deleted) this.#tombstones.set(id, held.versionstamp);
    else this.#tombstones.delete(id);
    this.#changes.put.set(id, encodeHeld(held));
    this.#changes.remove.delete(id);
  }

  #setCursor(versionstamp: string): void {
    if (this.#cursor !== null && versionstamp <= this.#cursor) return;
    this.#cursor = versionstamp;
    this.#changes.meta.cursor = versionstamp;
    // Resent writes answered as applied before: the feed has now brought their commit.
    const released: KvKey[] = [];
    for (const write of [...this.#outbox.values()]) {
      if (write.awaiting && write.awaiting <= versionstamp) {
        this.#settle(write);
        released.push(...write.mutations.map((m) => m.key));
      }
    }
    // Deletions older than the resume point can no longer be overtaken: forget them.
    for (const [id, deletedAt] of this.#tombstones) {
      if (deletedAt > versionstamp || this.#writers.has(id)) continue;
      this.#tombstones.delete(id);
      this.#held.delete(id);
      this.#changes.put.delete(id);
      this.#changes.remove.add(id);
    }
    if (released.length > 0) this.#changed(released, "confirmed");
  }

  /**
   * Write `after` to key `id`, made on version `base`, was applied at `versionstamp`: the next
   * pending write of the key now rests on that commit, and so do the checks of later writes that
   * named `base` for the key (made while `after` was pending, they were made on its value).
   */
  #rebase(id: string, after: number, base: string | null, versionstamp: string): void {
    const next = (this.#writers.get(id) ?? []).find((w) => w > after);
    for (const write of this.#outbox.values()) {
      if (write.id <= after || write.state !== "pending") continue;
      let moved = false;
      if (write.id === next) {
        write.mutations.forEach((m, i) => {
          if (idOf(m.key) === id) write.base[i] = versionstamp;
        });
        moved = true;
      }
      for (const check of write.checks) {
        if (idOf(check.key) === id && check.versionstamp === base) {
          check.versionstamp = versionstamp;
          moved = true;
        }
      }
      if (moved) this.#saveWrite(write);
    }
  }

  /** Removes an answered write from the outbox and the view. */
  #settle(write: Pending): void {
    this.#unwrite(write);
    this.#outbox.delete(write.id);
    this.#changes.outboxRemove.add(write.id);
    this.#changes.outboxPut.delete(write.id);
  }

  #unwrite(write: Pending): void {
    for (const m of write.mutations) {
      const id = idOf(m.key);
      const writers = this.#writers.get(id)?.filter((w) => w !== write.id) ?? [];
      if (writers.length > 0) this.#writers.set(id, writers);
      else this.#writers.delete(id);
    }
  }

  #addWriter(id: string, write: number): void {
    const writers = this.#writers.get(id);
    if (!writers) this.#writers.set(id, [write]);
    else if (writers.at(-1) !== write) writers.push(write);
  }

  #saveWrite(write: Pending): void {
    this.#changes.outboxPut.set(write.id, encodePending(write));
    this.#changes.outboxRemove.delete(write.id);
  }

  /** Recomputes the view of `keys` and reports each one that changed. */
  #changed(keys: readonly KvKey[], cause: ClientEvent["cause"]): void {
    const seen = new Set<string>();
    for (const key of keys) {
      const id = idOf(key);
      if (seen.has(id)) continue;
      seen.add(id);
      const before = this.#shown.get(id);
      const after = this.#compute(id, key);
      if (before && sameEntry(before, after)) continue;
      this.#shown.set(id, after);
      this.#revision++;
      this.listener({ key, entry: after, cause });
    }
  }
}

/** Older puts and removes of a store, with newer ones laid over them. */
function underNewer<K>(
  puts: readonly { readonly id: K; readonly json: string }[],
  removes: readonly K[],
  newerPuts: ReadonlyMap<K, string>,
  newerRemoves: ReadonlySet<K>,
): { put: Map<K, string>; remove: Set<K> } {
  const put = new Map(puts.map(({ id, json }) => [id, json]));
  const remove = new Set(removes);
  for (const id of newerRemoves) {
    put.delete(id);
    remove.add(id);
  }
  for (const [id, json] of newerPuts) {
    put.set(id, json);
    remove.delete(id);
  }
  return { put, remove };
}

function emptyChanges() {
  return {
    put: new Map<string, string>(),
    remove: new Set<string>(),
    clear: false,
    outboxPut: new Map<number, string>(),
    outboxRemove: new Set<number>(),
    meta: {} as Record<string, string>,
  };
}

function sameEntry(a: ClientEntry, b: ClientEntry): boolean {
  return (
    a.exists === b.exists &&
    a.value === b.value &&
    a.versionstamp === b.versionstamp &&
    a.pending === b.pending &&
    a.metadata === b.metadata
  );
}

function expired(entry: ClientEntry, now: number): boolean {
  const at = entry.metadata?.expiresAt;
  return at !== null && at !== undefined && at <= now;
}

/** Whether `key` is `prefix` or under it. */
export function under(key: KvKey, prefix: KvKey): boolean {
  return startsWith(encodeKey(key), encodeKey(prefix));
}

export { idOf };

// ---- storage encoding: lossless tagged JSON ----

function encodeHeld(held: Held): string {
  return JSON.stringify({
    k: keyToJson(held.key),
    v: held.deleted ? null : valueToJson(held.value),
    s: held.versionstamp,
    ...(held.deleted && { d: 1 }),
    ...(held.metadata && { m: held.metadata }),
  });
}

function decodeHeld(json: string): Held {
  const o = JSON.parse(json);
  return {
    key: keyFromJson(o.k),
    value: o.d ? null : valueFromJson(o.v),
    versionstamp: o.s,
    deleted: o.d === 1,
    ...(o.m && { metadata: o.m }),
  };
}

function encodePending(write: Pending): string {
  return JSON.stringify({
    ...write,
    mutations: write.mutations.map((m) =>
      m.type === "set"
        ? { ...m, key: keyToJson(m.key), value: valueToJson(m.value) }
        : { ...m, key: keyToJson(m.key) },
    ),
    checks: write.checks.map((c) => ({ ...c, key: keyToJson(c.key) })),
  });
}

function decodePending(json: string): Pending {
  const o = JSON.parse(json);
  return {
    ...o,
    mutations: o.mutations.map((m: { type: string; key: unknown; value?: unknown }) =>
      m.type === "set"
        ? { ...m, key: keyFromJson(m.key), value: valueFromJson(m.value) }
        : { ...m, key: keyFromJson(m.key) },
    ),
    checks: o.checks.map((c: { key: unknown; versionstamp: string | null }) => ({
      ...c,
      key: keyFromJson(c.key),
    })),
  };
}

function publicWrite(write: Pending): OutboxWrite {
  return {
    id: write.id,
    mutations: write.mutations,
    checks: write.checks,
    base: [...write.base],
    createdAt: write.createdAt,
    state: write.state,
    ...(write.error && { error: write.error }),
  };
}
