/**
 * `ClientKv`: the client store. Reads answer from the local view at once; writes apply to it at
 * once, are saved in the outbox, then sent in order by the sync client, which also applies the
 * server's changes. See `types.ts` for the contract and `replica.ts` for reconciliation.
 */
import { toHex } from "../codec/bytes.js";
import { encodeKey, type KvKey } from "../codec/key.js";
import { compilePattern, type KvPattern, matches, partIds } from "../core/events/pattern.js";
import type { KvListSelector } from "../core/types.js";
import { describe, fail, KvError } from "../errors.js";
import { valueToJson } from "../wire/json.js";
import type { ServerMessage } from "../wire/sync.js";
import { idOf, Replica, under } from "./replica.js";
import { memoryStorage } from "./storage/memory.js";
import { SyncClient } from "./sync-client.js";
import type {
  ClientEntry,
  ClientEvent,
  ClientKvOptions,
  ClientListOptions,
  ClientMutation,
  ClientStorage,
  OutboxWrite,
  SyncConflict,
  SyncStatus,
  SyncWriteError,
  WebSocketLike,
} from "./types.js";

/** What a write's server answer was. */
export type ClientWriteOutcome =
  | { readonly ok: true; readonly versionstamp: string }
  | { readonly ok: false; readonly error: SyncWriteError; readonly conflict?: SyncConflict };

/** A local write: applied to the view and saved in the outbox; `confirmed` settles when the server answers. */
export interface ClientWrite {
  readonly ok: true;
  readonly id: number;
  /** Never rejects: resolves with the server's answer (kept waiting while offline). */
  readonly confirmed: Promise<ClientWriteOutcome>;
}

/** What differs between a browser and Node: named storage, the WebSocket, connectivity events. */
export interface ClientPlatform {
  readonly storage: (name: string) => ClientStorage | Promise<ClientStorage>;
  readonly webSocket: () => WebSocketLike | Promise<WebSocketLike>;
  /** Calls `listener(online)` when the device goes on- or offline; returns the unsubscribe. */
  readonly connectivity?: (listener: (online: boolean) => void) => () => void;
  /** Whether the device is online now (a page opened offline waits for its `online` event). */
  readonly online?: () => boolean;
}

const NAMESPACE_PREFIX = encodeKey(["c"]);
const OPTIONS = [
  "url",
  "token",
  "namespace",
  "prefixes",
  "storage",
  "WebSocket",
  "reconnectDelay",
  "maxReconnectDelay",
  "manual",
];

/**
 * Opens a client store (see {@link ClientKvOptions}); with `platform`'s storage and WebSocket.
 * The entry points call it with theirs.
 */
export async function openClientKv(
  options: ClientKvOptions,
  platform: ClientPlatform,
): Promise<ClientKv> {
  if (typeof options !== "object" || options === null)
    fail("INVALID_ARGUMENT", `createClientKv takes { url, token, … }, got ${describe(options)}`);
  const unknown = Object.keys(options).filter((name) => !OPTIONS.includes(name));
  if (unknown.length > 0)
    fail("INVALID_ARGUMENT", `createClientKv: unknown option ${unknown.join(", ")}`);
  if (typeof options.url !== "string" || !/^https?:\/\//.test(options.url))
    fail(
      "INVALID_ARGUMENT",
      `url: a Cellar server's http:// or https:// URL, got ${describe(options.url)}`,
    );
  const prefixes = options.prefixes ?? [[]];
  if (!Array.isArray(prefixes) || prefixes.length === 0)
    fail("INVALID_ARGUMENT", `prefixes: a non-empty array of keys, got ${describe(prefixes)}`);
  for (const prefix of prefixes) encodeKey(prefix);
  const storage =
    options.storage === undefined
      ? memoryStorage()
      : typeof options.storage === "string"
        ? await platform.storage(options.storage)
        : options.storage;
  const WebSocket = options.WebSocket ?? (await platform.webSocket());
  const kv = new ClientKv(options, prefixes, storage, WebSocket, platform);
  await kv.ready;
  return kv;
}

export class ClientKv {
  readonly #replica: Replica;
  readonly #storage: ClientStorage;
  readonly #sync: SyncClient;
  readonly #prefixes: readonly KvKey[];
  readonly #listeners = new Set<{
    pattern: ReturnType<typeof compilePattern>;
    listener: (event: ClientEvent) => void;
  }>();
  readonly #statusListeners = new Set<(status: SyncStatus) => void>();
  readonly #waiting = new Map<number, (outcome: ClientWriteOutcome) => void>();
  readonly #stopConnectivity: () => void;
  #status: SyncStatus = {
    state: "offline",
    pending: 0,
    failed: 0,
    lastSynced: null,
    conflicts: [],
    error: null,
  };
  #socket: "connecting" | "open" | "offline" = "offline";
  #head: string | null = null;
  #saving: Promise<void> = Promise.resolve();
  #closed = false;
  /** @internal Settles once the saved state is loaded. */
  readonly ready: Promise<void>;

  /** @internal Use `createClientKv`. */
  constructor(
    options: ClientKvOptions,
    prefixes: readonly KvKey[],
    storage: ClientStorage,
    WebSocket: WebSocketLike,
    platform: ClientPlatform,
  ) {
    this.#prefixes = prefixes;
    this.#storage = storage;
    this.#replica = new Replica((event) => this.#emit(event));
    let client = "";
    this.#sync = new SyncClient({
      url: options.url,
      ...(options.token !== undefined && { token: options.token }),
      ...(options.namespace !== undefined && { namespace: options.namespace }),
      prefixes,
      get client() {
        return client;
      },
      WebSocket,
      reconnectDelay: options.reconnectDelay ?? 250,
      maxReconnectDelay: options.maxReconnectDelay ?? 10_000,
      cursor: () => this.#replica.cursor,
      toSend: () => this.#replica.toSend(),
      onMessage: (message) => this.#receive(message),
      onRefusedLocally: (id, error) => this.#receive({ type: "refused", id, error }),
      onState: (state, error) => {
        this.#socket = state;
        if (state !== "open") this.#head = null;
        this.#update(error === null && state === "open" ? {} : { error });
      },
    });
    this.ready = this.#load((id) => {
      client = id;
    });
    this.#auto = !options.manual;
    this.#online = platform.online ?? (() => true);
    // A device that goes offline keeps its socket open for a while; drop it at once and come
    // back as soon as the device is online again.
    this.#stopConnectivity =
      platform.connectivity?.((online) => {
        if (this.#closed || !this.#auto) return;
        if (online) this.#sync.connect();
        else this.#sync.disconnect();
      }) ?? (() => {});
  }

  async #load(setClient: (id: string) => void): Promise<void> {
    const state = await this.#storage.load();
    const client = state.meta.client ?? randomId();
    setClient(client);
    this.#replica.load(state);
    if (!state.meta.client) await this.#storage.save({ meta: { client } });
    this.#update({});
    if (this.#auto && this.#online()) this.#sync.connect();
  }

  readonly #online: () => boolean;

  /** Whether to sync whenever the device is online (not `manual`, not `disconnect()`ed). */
  #auto: boolean;

  // ---- reads: from the view, at once ----

  /** The entry the view shows for `key`. */
  async get<T = unknown>(key: KvKey): Promise<ClientEntry<T>> {
    return this.peek<T>(key);
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly KvKey[],
  ): Promise<{ [K in keyof T]: ClientEntry<T[K]> }> {
    return keys.map((key) => this.peek(key)) as { [K in keyof T]: ClientEntry<T[K]> };
  }

  /** The entries of `selector` the view holds, in key order (as `Kv.list` selects them). */
  async *list<T = unknown>(
    selector: KvListSelector,
    options: ClientListOptions = {},
  ): AsyncIterableIterator<ClientEntry<T>> {
    yield* this.peekList<T>(selector, options);
  }

  /** {@link get}, synchronously: the same object until the key's view changes. */
  peek<T = unknown>(key: KvKey): ClientEntry<T> {
    this.#assertReplicated(key);
    return this.#replica.get(key) as ClientEntry<T>;
  }

  /** {@link list}, synchronously. */
  peekList<T = unknown>(
    selector: KvListSelector,
    options: ClientListOptions = {},
  ): ClientEntry<T>[] {
    const { start, end } = this.#range(selector);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(limit) || limit < 1))
      fail("INVALID_ARGUMENT", `limit: a positive integer, got ${describe(limit)}`);
    return this.#replica.range(start, end, options.reverse === true, limit) as ClientEntry<T>[];
  }

  /** Increases at each change of the view. */
  get revision(): number {
    return this.#replica.revision;
  }

  // ---- writes: to the view at once, then the outbox, then the server ----

  set(key: KvKey, value: unknown, options: { expireIn?: number } = {}): Promise<ClientWrite> {
    return this.atomic().set(key, value, options).commit() as Promise<ClientWrite>;
  }

  delete(key: KvKey): Promise<ClientWrite> {
    return this.atomic().delete(key).commit() as Promise<ClientWrite>;
  }

  /** An atomic write: its checks are evaluated on the view now, and again on the server. */
  atomic(): ClientAtomic {
    return new ClientAtomic((mutations, checks) => this.#write(mutations, checks));
  }

  async #write(
    mutations: ClientMutation[],
    checks: { key: KvKey; versionstamp: string | null }[],
  ): Promise<ClientWrite | { ok: false }> {
    this.#assertOpen();
    for (const m of [...mutations, ...checks]) this.#assertReplicated(m.key);
    for (const m of mutations) if (m.type === "set") valueToJson(m.value);
    if (checks.some((c) => this.#replica.get(c.key).versionstamp !== c.versionstamp))
      return { ok: false };
    const id = this.#replica.write(mutations, checks);
    const confirmed = new Promise<ClientWriteOutcome>((resolve) => this.#waiting.set(id, resolve));
    this.#update({});
    await this.#save();
    this.#sync.flush();
    return { ok: true, id, confirmed };
  }

  // ---- changes ----

  /**
   * Calls `listener` after each change of the view to a key matching `pattern` (`ANY`, `REST`
   * as for `Kv.subscribe`), synchronously. Returns the unsubscribe function.
   */
  subscribe<T = unknown>(
    pattern: KvPattern,
    listener: (event: ClientEvent<T>) => void,
  ): () => void {
    if (typeof listener !== "function")
      fail("INVALID_ARGUMENT", `subscribe takes a listener function, got ${describe(listener)}`);
    const item = {
      pattern: compilePattern(pattern, NAMESPACE_PREFIX),
      listener: listener as (event: ClientEvent) => void,
    };
    this.#listeners.add(item);
    return () => {
      this.#listeners.delete(item);
    };
  }

  /** The sync status; the same object until it changes. */
  get status(): SyncStatus {
    return this.#status;
  }

  /** Calls `listener` with each new status. Returns the unsubscribe function. */
  onStatus(listener: (status: SyncStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => {
      this.#statusListeners.delete(listener);
    };
  }

  /** The writes not yet confirmed and those the server refused, oldest first. */
  outbox(): OutboxWrite[] {
    return this.#replica.outbox();
  }

  /** Forgets a refused write (`outbox()`'s `failed` ones). */
  async dismiss(id: number): Promise<void> {
    if (!this.#replica.dismiss(id)) fail("NOT_FOUND", `no refused write ${id} in the outbox`);
    this.#update({});
    await this.#save();
  }

  clearConflicts(): void {
    this.#replica.conflicts.length = 0;
    this.#update({});
  }

  /** Starts syncing (after `manual: true` or `disconnect()`). */
  connect(): void {
    this.#assertOpen();
    this.#auto = true;
    this.#sync.connect();
  }

  /** Stops syncing: reads and writes go on locally; writes wait in the outbox. */
  disconnect(): void {
    this.#auto = false;
    this.#sync.disconnect();
  }

  /** Resolves once online, caught up with the server, and every write answered. */
  whenSynced(): Promise<void> {
    const synced = (s: SyncStatus) => s.state === "online" && s.pending === 0;
    // Closed, or refused for good (a bad token, a namespace the token may not use).
    const hopeless = (s: SyncStatus) =>
      s.state === "closed" || (s.state === "offline" && s.error !== null && !this.#sync.retrying);
    const settle = (s: SyncStatus, resolve: () => void, reject: (error: KvError) => void) => {
      if (synced(s)) resolve();
      else if (s.state === "closed")
        reject(new KvError("DATABASE_CLOSED", "the client store was closed"));
      else if (hopeless(s)) reject(new KvError(s.error!.code, s.error!.message));
      else return false;
      return true;
    };
    return new Promise((resolve, reject) => {
      if (settle(this.#status, resolve, reject)) return;
      const stop = this.onStatus((status) => {
        if (settle(status, resolve, reject)) stop();
      });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopConnectivity();
    this.#sync.disconnect();
    await this.#save();
    await this.#storage.close();
    this.#update({});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals ----

  #receive(message: ServerMessage): void {
    const replica = this.#replica;
    switch (message.type) {
      case "welcome":
        this.#head = message.head;
        if (message.snapshot) replica.beginReload();
        else replica.cancelReload();
        break;
      case "snapshot":
        replica.snapshot(message.entries);
        break;
      case "snapshot-end":
        replica.endReload(message.versionstamp);
        break;
      case "changes":
        replica.changes(message.versionstamp, message.entries);
        break;
      case "progress":
        replica.progress(message.versionstamp);
        break;
      case "ack":
        replica.ack(message.id, message.versionstamp, message.entries, message.duplicate === true);
        this.#settle(message.id, { ok: true, versionstamp: message.versionstamp });
        break;
      case "conflict": {
        const [conflict] = replica.conflict(message.id, message.entries, message.mutations);
        this.#settle(message.id, {
          ok: false,
          error: {
            code: "CONFLICT",
            message: "the server's entry changed since this write's base; it was kept",
          },
          ...(conflict && { conflict }),
        });
        break;
      }
      case "refused":
        replica.refuse(message.id, message.error);
        this.#settle(message.id, { ok: false, error: message.error });
        break;
      case "error":
        this.#update({ error: message.error });
        return;
    }
    this.#update({});
    this.#save().then(
      () => this.#sync.flush(),
      // Reported on the status by #save; the changes wait for the next save.
      () => {},
    );
  }

  #settle(id: number, outcome: ClientWriteOutcome): void {
    this.#waiting.get(id)?.(outcome);
    this.#waiting.delete(id);
  }

  /**
   * Saves what changed, one save at a time, in order; calls made while a save waits to start
   * share it, so a burst of changes is one transaction.
   */
  #save(): Promise<void> {
    this.#queued ??= this.#saving.then(async () => {
      this.#queued = null;
      const changes = this.#replica.takeChanges();
      if (!changes) return;
      try {
        await this.#storage.save(changes);
      } catch (error) {
        // The next save retries these changes; until one succeeds, say why on the status.
        this.#replica.requeue(changes);
        const message = error instanceof Error ? error.message : String(error);
        this.#update({
          error: { code: "STORAGE_ERROR", message: `saving the replica failed: ${message}` },
        });
        throw new KvError("STORAGE_ERROR", `saving the replica failed: ${message}`);
      }
    });
    const queued = this.#queued;
    // Later saves wait for this one, whether it succeeded or not.
    this.#saving = queued.catch(() => {});
    return queued;
  }

  /** The save that has not started yet, which new changes join. */
  #queued: Promise<void> | null = null;

  #emit(event: ClientEvent): void {
    if (this.#listeners.size === 0) return;
    const ids = partIds(encodeKey(event.key, NAMESPACE_PREFIX));
    for (const { pattern, listener } of [...this.#listeners]) {
      if (!matches(pattern, ids)) continue;
      try {
        listener(event);
      } catch (error) {
        console.warn(`cellar: a client store listener threw: ${(error as Error).message}`);
      }
    }
  }

  #update(change: { error?: SyncWriteError | null }): void {
    const replica = this.#replica;
    const cursor = replica.cursor;
    const caughtUp = this.#head !== null && cursor !== null && cursor >= this.#head;
    const state = this.#closed
      ? "closed"
      : this.#socket === "open"
        ? caughtUp
          ? "online"
          : "connecting"
        : this.#socket;
    const next: SyncStatus = {
      state,
      pending: replica.pendingCount,
      failed: replica.failedCount,
      lastSynced: cursor,
      conflicts:
        replica.conflicts.length === this.#status.conflicts.length
          ? this.#status.conflicts
          : [...replica.conflicts],
      error:
        change.error !== undefined ? change.error : state === "online" ? null : this.#status.error,
    };
    const old = this.#status;
    if (
      old.state === next.state &&
      old.pending === next.pending &&
      old.failed === next.failed &&
      old.lastSynced === next.lastSynced &&
      old.conflicts === next.conflicts &&
      old.error === next.error
    )
      return;
    this.#status = next;
    for (const listener of [...this.#statusListeners]) listener(next);
  }

  #range(selector: KvListSelector): { start: string; end: string } {
    if (typeof selector !== "object" || selector === null)
      fail(
        "INVALID_SELECTOR",
        `a selector is { prefix } or { start, end }, got ${describe(selector)}`,
      );
    const s = selector as { prefix?: KvKey; start?: KvKey; end?: KvKey };
    let start: string;
    let end: string;
    if (s.prefix) {
      this.#assertReplicated(s.prefix);
      const hex = toHex(encodeKey(s.prefix));
      start = s.start ? idOf(s.start) : `${hex}00`;
      end = s.end ? idOf(s.end) : `${hex}ff`;
    } else if (s.start && s.end) {
      this.#assertReplicated(s.start);
      start = idOf(s.start);
      end = idOf(s.end);
    } else return fail("INVALID_SELECTOR", "a selector needs a prefix, or both start and end");
    return { start, end };
  }

  #assertReplicated(key: KvKey): void {
    if (!Array.isArray(key))
      fail("INVALID_KEY", `a key is an array of parts, got ${describe(key)}`);
    if (!this.#prefixes.some((prefix) => under(key, prefix)))
      fail(
        "INVALID_ARGUMENT",
        `key ${describe(key)} lies outside the prefixes this client store replicates`,
      );
  }

  #assertOpen(): void {
    if (this.#closed) fail("DATABASE_CLOSED", "the client store is closed");
  }
}

/** Built by `clientKv.atomic()`: checks, sets and deletes committed together, all or nothing. */
export class ClientAtomic {
  readonly #mutations: ClientMutation[] = [];
  readonly #checks: { key: KvKey; versionstamp: string | null }[] = [];

  /** @internal */
  constructor(
    private readonly commitWith: (
      mutations: ClientMutation[],
      checks: { key: KvKey; versionstamp: string | null }[],
    ) => Promise<ClientWrite | { ok: false }>,
  ) {}

  /** The key's view must have this versionstamp now, and the server's entry too when it applies the write. */
  check(...checks: { key: KvKey; versionstamp: string | null }[]): this {
    for (const check of checks) {
      encodeKey(check.key);
      this.#checks.push({ key: check.key, versionstamp: check.versionstamp });
    }
    return this;
  }

  set(key: KvKey, value: unknown, options: { expireIn?: number } = {}): this {
    encodeKey(key);
    const { expireIn } = options;
    if (expireIn !== undefined && (!Number.isSafeInteger(expireIn) || expireIn <= 0))
      fail("INVALID_ARGUMENT", `expireIn: a positive integer of ms, got ${describe(expireIn)}`);
    this.#mutations.push({ type: "set", key, value, ...(expireIn !== undefined && { expireIn }) });
    return this;
  }

  delete(key: KvKey): this {
    encodeKey(key);
    this.#mutations.push({ type: "delete", key });
    return this;
  }

  /** Resolves with the local write once saved, or `{ ok: false }` when a check fails on the view. */
  commit(): Promise<ClientWrite | { ok: false }> {
    if (this.#mutations.length === 0)
      fail("INVALID_MUTATION", "an atomic write needs at least one set or delete");
    return this.commitWith(this.#mutations, this.#checks);
  }
}

function randomId(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return toHex(bytes);
}
