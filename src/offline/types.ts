/**
 * The client store's contract: a replica of some prefixes of one namespace of a Cellar server,
 * readable and writable at once and offline, kept in step with the server over WebSocket.
 *
 * What a reader sees (the view) is the replica — the server's entries as last heard — with the
 * outbox's writes applied on top, in the order they were made. A write shows in the view at once
 * (`pending: true`), and stays shown until the server's answer for it arrives: then the view
 * shows the server's entry for that write, or a later one, never an older one.
 */
import type { KvKey } from "../codec/key.js";
import type { KvPattern } from "../core/events/pattern.js";
import type { KvEntryMetadata, KvListSelector } from "../core/types.js";
import type { KvErrorCode } from "../errors.js";
import type { SyncMutation } from "../wire/sync.js";

/**
 * An entry of the view. `versionstamp` is the server's versionstamp of the state the entry rests
 * on: the entry itself when `pending` is false; the one the pending writes were made on when it
 * is true (`null` when the server has confirmed no version of the key yet). An absent key has
 * `exists: false` and `value: null`: with `pending: true` when a pending write deleted it.
 */
export type ClientEntry<T = unknown> =
  | {
      readonly key: KvKey;
      /** The view has the key (`value` may still be `null`, if that is what was set). */
      readonly exists: true;
      readonly value: T;
      readonly versionstamp: string | null;
      readonly pending: boolean;
      readonly metadata?: KvEntryMetadata;
    }
  | {
      readonly key: KvKey;
      readonly exists: false;
      readonly value: null;
      readonly versionstamp: string | null;
      readonly pending: boolean;
      readonly metadata?: undefined;
    };

/** A change of the view: what a key shows now, after a local write or a server update. */
export interface ClientEvent<T = unknown> {
  readonly key: KvKey;
  /** The entry the view shows now (`value: null` once deleted). */
  readonly entry: ClientEntry<T>;
  /** Why it changed: a local write, the server's answer to one, or another client's commit. */
  readonly cause: "local" | "confirmed" | "remote" | "conflict" | "refused";
}

/** A write as the outbox keeps it and the server receives it (the protocol's mutation). */
export type ClientMutation = SyncMutation;

/** A write waiting in the outbox, or refused by the server. */
export interface OutboxWrite {
  /** Increasing in the order the writes were made; the order they are sent and applied in. */
  readonly id: number;
  readonly mutations: readonly ClientMutation[];
  /** `check`s of an atomic write: the key must still have this versionstamp on the server. */
  readonly checks: readonly { readonly key: KvKey; readonly versionstamp: string | null }[];
  /**
   * The versionstamp each written key had in the replica when the write was made (`null`: no
   * version): what the server compares with its own to detect a conflict.
   */
  readonly base: readonly (string | null)[];
  readonly createdAt: number;
  /** `pending` until the server answers; `failed` when it refused the write (see `error`). */
  readonly state: "pending" | "failed";
  readonly error?: SyncWriteError;
}

/** Why the server refused a write: the same codes as every other face's errors. */
export interface SyncWriteError {
  readonly code: KvErrorCode;
  readonly message: string;
  /** What was wrong with the value, for a write that failed validation. */
  readonly issues?: readonly {
    readonly path: readonly (string | number)[];
    readonly message: string;
  }[];
}

/**
 * A write the server did not apply as made because the key had changed on the server since the
 * write's base (conflict policy `reject`): the view now shows the server's entry.
 */
export interface SyncConflict {
  /** The outbox id of the refused write. */
  readonly write: number;
  readonly key: KvKey;
  /** What this client tried to write to the key. */
  readonly attempted: ClientMutation;
  /** The versionstamp the write was based on. */
  readonly base: string | null;
  /** The server's entry, which stays (`value` and `versionstamp` `null`: the key is absent). */
  readonly server: {
    readonly value: unknown;
    readonly versionstamp: string | null;
    readonly metadata?: KvEntryMetadata;
  };
  readonly at: number;
}

export type SyncState = "connecting" | "online" | "offline" | "closed";

/** What the sync client is doing; every change is reported to `onStatus` listeners. */
export interface SyncStatus {
  /**
   * `online`: connected and caught up with the server's feed (`lastSynced` is current);
   * `connecting`: opening or catching up; `offline`: waiting to reconnect; `closed`: `close()`d.
   */
  readonly state: SyncState;
  /** Outbox writes the server has not confirmed yet. */
  readonly pending: number;
  /** Outbox writes the server refused (kept until `dismiss`ed). */
  readonly failed: number;
  /** The server versionstamp the replica has applied every change up to; `null` before the first sync. */
  readonly lastSynced: string | null;
  /** Conflicts since the store opened (or since `clearConflicts`), oldest first. */
  readonly conflicts: readonly SyncConflict[];
  /** Why the last connection ended or could not open, while not online. */
  readonly error: SyncWriteError | null;
}

/**
 * Where the replica, the outbox and the sync position are kept: IndexedDB in a browser, a SQLite
 * file or memory in Node. Each `save` is one transaction: after a crash, all of it or none of it
 * is there.
 */
export interface ClientStorage {
  /** Everything saved, for the store to load when it opens. */
  load(): Promise<StoredState>;
  save(changes: StorageChanges): Promise<void>;
  close(): Promise<void>;
}

/** One replica entry as stored: the key, value and metadata in lossless tagged JSON. */
export interface StoredEntry {
  /** The key's encoded bytes in hex: orders as keys do. */
  readonly id: string;
  readonly json: string;
}

export interface StoredState {
  readonly entries: readonly StoredEntry[];
  readonly outbox: readonly { readonly id: number; readonly json: string }[];
  readonly meta: Readonly<Record<string, string>>;
}

export interface StorageChanges {
  readonly put?: readonly StoredEntry[];
  /** Entry ids to remove. */
  readonly remove?: readonly string[];
  /** Remove every entry first (a full reload). */
  readonly clear?: boolean;
  readonly outboxPut?: readonly { readonly id: number; readonly json: string }[];
  readonly outboxRemove?: readonly number[];
  readonly meta?: Readonly<Record<string, string>>;
}

/** The WebSocket constructor the sync client uses: the browser's, or `ws` in Node. */
export type WebSocketLike = new (url: string, protocols?: string | string[]) => WebSocketInstance;

/** The part of a WebSocket the sync client uses (the browser's and `ws`'s both have it). */
export interface WebSocketInstance {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface ClientKvOptions {
  /** The Cellar server's base URL, `http://` or `https://` (the sync socket is `/api/sync`). */
  readonly url: string;
  /** A token the server accepts; sent on the socket's URL (browsers cannot set its headers). */
  readonly token?: string;
  /** The namespace to replicate (default: the token's, or the default namespace). */
  readonly namespace?: string;
  /**
   * The prefixes to replicate: each prefix's key and every key under it (default `[[]]`: the
   * whole namespace). Reads and writes outside them are refused with `INVALID_ARGUMENT`.
   */
  readonly prefixes?: readonly KvKey[];
  /**
   * Where the replica and outbox are kept. A string is an IndexedDB database name in a browser,
   * a SQLite file path (or `":memory:"`) in Node; default: memory (nothing survives a restart).
   */
  readonly storage?: ClientStorage | string;
  /** The WebSocket constructor (default: the global one in a browser, `ws` in Node). */
  readonly WebSocket?: WebSocketLike;
  /** Milliseconds before the first reconnect attempt, doubled up to `maxReconnectDelay` (default 250). */
  readonly reconnectDelay?: number;
  /** Longest wait between reconnect attempts, in ms (default 10 000). */
  readonly maxReconnectDelay?: number;
  /** Start offline and connect only on `connect()` (default false: connect at once). */
  readonly manual?: boolean;
}

/** The selector and options `list`, `peekList` and `useList` take on a client store. */
export interface ClientListOptions {
  readonly limit?: number;
  readonly reverse?: boolean;
}

export type { KvListSelector, KvPattern };
