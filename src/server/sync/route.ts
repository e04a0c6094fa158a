/**
 * Client stores' sync over WebSocket at `/api/sync` (protocol: `wire/sync.ts`). Each connection
 * replicates some prefixes of the namespace its token (and `?namespace=`) gives: the server
 * sends a snapshot or the changes after the client's resume point, then every commit to those
 * prefixes — its own writes' included — and answers each client write in order, applied by
 * `apply.ts` through the normal commit path.
 *
 * As for workspace sync, the upgrade is accepted before authentication so that a browser can
 * read why it was refused: the socket closes with `CODE: message` and 4400 (a malformed or
 * out-of-turn message), 4401 (no or a bad token), 4403 (another origin, or a namespace the token
 * may not use); 1001 at shutdown, 1009 a message over the size limit, 1011 a server fault, 1013
 * a client that reads too slowly (it reconnects and resumes). A refused write is answered
 * `refused` with its reason; the connection stays.
 */
import type { IncomingMessage } from "node:http";
import { Counter, Gauge, type Registry } from "prom-client";
import type { WebSocket } from "ws";
import { encodeKey, type KvKey, keyId, startsWith } from "../../codec/key.js";
import type { KvEvent } from "../../core/events/index.js";
import { type KvPattern, REST } from "../../core/events/pattern.js";
import type { Kv } from "../../core/kv.js";
import { bareMessage, KvError } from "../../errors.js";
import {
  type Authenticator,
  assertAccess,
  NAMESPACE_HEADER,
  type RequestScope,
} from "../../http/auth.js";
import { statusOf } from "../../http/errors.js";
import type { StreamRegistry } from "../../http/streams.js";
import {
  decodeClientMessage,
  encodeServerMessage,
  entryText,
  type ServerMessage,
  SYNC_PATH,
  type SyncEntry,
  type SyncHello,
  type SyncWrite,
  snapshotText,
} from "../../wire/sync.js";
import {
  CLOSE_CODES,
  CLOSE_GOING_AWAY,
  CLOSE_SERVER_ERROR,
  CLOSE_TRY_LATER,
  closeReason,
} from "../../workspace/protocol.js";
import { assertOrigin, header, socketRoute, type UpgradeRoute } from "../websocket.js";
import { type CommitOrder, type SyncOptions, syncApplier } from "./apply.js";

export interface SyncRouteOptions extends SyncOptions {
  readonly authenticate: Authenticator;
  readonly cors: readonly string[];
  readonly streams: StreamRegistry;
  /** The largest message a client may send, in bytes. */
  readonly maxPayload: number;
  /** Bytes a connection may hold unsent before it is closed (1013) to resume later. */
  readonly maxBuffered: number;
  /** Milliseconds of quiet after which a client learns how far it is synced (default 1000). */
  readonly progressInterval?: number;
  /** Milliseconds between pings; a connection that misses one is dropped (default 30 s). */
  readonly pingInterval?: number;
  /** Where `cellar_sync_connections` and `cellar_sync_writes_total` go; none: not counted. */
  readonly registry?: Registry;
}

interface SyncMetrics {
  readonly connections: Gauge;
  readonly writes: Counter<"outcome">;
}

/** The sync metrics of `registry`, made once however many apps share it. */
function metricsOf(registry: Registry): SyncMetrics {
  const connections =
    (registry.getSingleMetric("cellar_sync_connections") as Gauge | undefined) ??
    new Gauge({
      name: "cellar_sync_connections",
      help: "Client stores connected to /api/sync",
      registers: [registry],
    });
  const writes =
    (registry.getSingleMetric("cellar_sync_writes_total") as Counter<"outcome"> | undefined) ??
    new Counter({
      name: "cellar_sync_writes_total",
      help: "Client store writes answered, by outcome: ack, duplicate (a resend applied before), conflict, refused",
      labelNames: ["outcome"] as const,
      registers: [registry],
    });
  return { connections, writes };
}

/** Entries per snapshot message, at most. */
const SNAPSHOT_PAGE = 500;
/** Bytes per snapshot message, about; and what the socket may hold before the next is sent. */
const SNAPSHOT_BYTES = 1024 * 1024;
/** How long a client has to say hello. */
const HELLO_TIMEOUT_MS = 10_000;
const CLOSE_GRACE_MS = 1000;

/**
 * The upgrade route of `/api/sync`.
 *
 * @example
 * acceptEventSockets(server, eventSockets, [syncRoute({ authenticate, cors, streams, maxPayload, maxBuffered })]);
 */
export function syncRoute(options: SyncRouteOptions): UpgradeRoute {
  const applier = syncApplier(options);
  const metrics = options.registry ? metricsOf(options.registry) : null;
  return socketRoute(
    options.maxPayload,
    (url) => (url.pathname === SYNC_PATH ? true : null),
    (ws, req, url) => {
      let admitted: { kv: Kv; scope: RequestScope };
      try {
        admitted = admit(req, url, options);
      } catch (error) {
        closeWith(ws, error);
        return;
      }
      new SyncConnection(ws, admitted.kv, admitted.scope, options, applier, metrics).start();
    },
  );
}

function admit(req: IncomingMessage, url: URL, options: SyncRouteOptions) {
  assertOrigin(req, options.cors, "sync with this server");
  const admitted = options.authenticate({
    authorization: req.headers.authorization,
    namespace: header(req, NAMESPACE_HEADER) ?? url.searchParams.get("namespace") ?? undefined,
    host: req.headers.host,
    queryToken: () => url.searchParams.get("token") ?? undefined,
  });
  assertAccess(admitted.scope, "read");
  return admitted;
}

function closeWith(ws: WebSocket, error: unknown): void {
  const kvError = error instanceof KvError ? error : null;
  // A client's mistake closes for good (44xx: its own code, else 4400); the rest is retried.
  const code = !kvError
    ? CLOSE_SERVER_ERROR
    : statusOf(kvError.code) < 500
      ? (CLOSE_CODES[kvError.code] ?? CLOSE_CODES.INVALID_REQUEST!)
      : CLOSE_SERVER_ERROR;
  const reason = closeReason(
    kvError?.code ?? "UNAVAILABLE",
    kvError ? kvError.message : bareMessage(error as Error),
  );
  if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
}

class SyncConnection {
  #hello: SyncHello | null = null;
  #prefixes: Uint8Array[] = [];
  #unsubscribe: () => void = () => {};
  #release: () => void = () => {};
  /** Changes held while a snapshot is sent; `null` once changes go straight out. */
  #held: ServerMessage[] | null = null;
  /** The commit whose events are being gathered into one `changes` message. */
  #batch: { versionstamp: string; entries: SyncEntry[] } | null = null;
  /** Writes are applied one at a time, in the order they came. */
  /** Answers go back in the order the writes came. */
  #answers: Promise<void> = Promise.resolve();
  /** Resolves once the last write's commit was issued (or it needed none). */
  #issued: Promise<void> = Promise.resolve();
  /** Per key id: settles once the last unanswered write naming the key is answered. */
  readonly #busy = new Map<string, Promise<void>>();
  #ended = false;
  /** Counted in `cellar_sync_connections` (from `start` until it ends). */
  #counted = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly kv: Kv,
    private readonly scope: RequestScope,
    private readonly options: SyncRouteOptions,
    private readonly applier: ReturnType<typeof syncApplier>,
    private readonly metrics: SyncMetrics | null,
  ) {}

  start(): void {
    const { ws } = this;
    try {
      this.#release = this.options.streams.add(() => {
        this.#close(CLOSE_GOING_AWAY, "the server is shutting down");
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      });
    } catch (error) {
      closeWith(ws, error);
      return;
    }
    this.metrics?.connections.inc();
    this.#counted = true;
    const timeout = setTimeout(() => {
      if (!this.#hello) this.#fail(new KvError("INVALID_REQUEST", "no hello within 10 s"));
    }, HELLO_TIMEOUT_MS);
    timeout.unref();
    const ping = setInterval(() => {
      if ((ws as WebSocket & { isAlive?: boolean }).isAlive === false) ws.terminate();
      (ws as WebSocket & { isAlive?: boolean }).isAlive = false;
      ws.ping();
    }, this.options.pingInterval ?? 30_000);
    ping.unref();
    ws.on("pong", () => {
      (ws as WebSocket & { isAlive?: boolean }).isAlive = true;
    });
    ws.on("close", () => {
      clearTimeout(timeout);
      clearInterval(ping);
      this.#end();
    });
    ws.on("message", (data, isBinary) => this.#receive(isBinary ? null : data.toString()));
  }

  #receive(text: string | null): void {
    if (this.#ended) return;
    let message: ReturnType<typeof decodeClientMessage>;
    try {
      message = decodeClientMessage(text);
      if (message.type === "hello" && this.#hello)
        throw new KvError("INVALID_REQUEST", "hello was already sent on this connection");
      if (message.type === "write" && !this.#hello)
        throw new KvError("INVALID_REQUEST", "a write before hello");
    } catch (error) {
      this.#fail(
        error instanceof KvError && error.code !== "INVALID_REQUEST"
          ? new KvError("INVALID_REQUEST", error.message)
          : error,
      );
      return;
    }
    if (message.type === "hello") {
      this.#hello = message;
      this.#prefixes = message.prefixes.map((prefix) => encodeKey(prefix));
      void this.#startFeed(message.since).catch((error) => this.#fail(error));
      return;
    }
    this.#pipeline(message);
  }

  /**
   * Applies a connection's writes as a pipeline: a write reads and decides while earlier ones
   * commit, unless it names a key an earlier unanswered write names (then it waits for that one);
   * commits are issued in the order the writes came, so they commit in that order and the
   * database can group them; answers go back in that order.
   */
  #pipeline(write: SyncWrite): void {
    const keys = [...write.mutations, ...write.checks].map((m) => keyId(encodeKey(m.key)));
    const after = [
      ...new Set(keys.map((key) => this.#busy.get(key)).filter((p) => p !== undefined)),
    ];
    const turn = this.#issued;
    let issued!: () => void;
    this.#issued = new Promise<void>((resolve) => {
      issued = resolve;
    });
    const answer = Promise.all(after)
      .then(() => (this.#ended ? null : this.#apply(write, { turn, issued })))
      .finally(() => issued());
    const done = answer.then(
      () => {},
      () => {},
    );
    for (const key of keys) this.#busy.set(key, done);
    void done.then(() => {
      for (const key of keys) if (this.#busy.get(key) === done) this.#busy.delete(key);
    });
    this.#answers = this.#answers
      .then(() => answer)
      .then((message) => {
        if (!message) return;
        const outcome = message.type === "ack" && message.duplicate ? "duplicate" : message.type;
        this.metrics?.writes.inc({ outcome });
        this.#send(message);
      })
      .catch((error) => this.#fail(error));
  }

  async #apply(write: SyncWrite, order: CommitOrder): Promise<ServerMessage> {
    const refused = (code: "FORBIDDEN" | "INVALID_ARGUMENT", message: string): ServerMessage => ({
      type: "refused",
      id: write.id,
      error: { code, message },
    });
    if (this.scope.access === "read")
      return refused("FORBIDDEN", "this token may read but not write");
    const outside = [...write.mutations, ...write.checks].find((m) => !this.#covers(m.key));
    if (outside)
      return refused(
        "INVALID_ARGUMENT",
        `key ${JSON.stringify(outside.key.map(String))} lies outside the prefixes this client replicates`,
      );
    return this.applier.apply(this.kv, this.#hello!.client, write, order);
  }

  #covers(key: KvKey): boolean {
    const bytes = encodeKey(key);
    return this.#prefixes.some((prefix) => startsWith(bytes, prefix));
  }

  /** Sends the snapshot or the changes since `since`, then every change as it commits. */
  async #startFeed(since: string | undefined): Promise<void> {
    const head = await this.kv.currentVersionstamp();
    const prefixes = this.#hello!.prefixes;
    const pattern: KvPattern = prefixes.length === 1 ? [...prefixes[0]!, REST] : [REST];
    const subscribe = (from: string, snapshot: boolean) => {
      this.#send({
        type: "welcome",
        namespace: this.kv.namespaceName,
        snapshot,
        head,
        maxMessage: this.options.maxPayload,
      });
      this.#unsubscribe = this.kv.subscribe(pattern, (event) => this.#event(event), {
        since: from,
        progressInterval: this.options.progressInterval ?? 1000,
        onProgress: (versionstamp) => this.#queue({ type: "progress", versionstamp }),
        onError: (error) => {
          if (error.code === "COMPACTED" && !snapshot) {
            this.#unsubscribe();
            void this.#snapshot(subscribe).catch((e) => this.#fail(e));
          } else this.#fail(error);
        },
      });
    };
    // A resume point past the database's head comes from another database (one restored from
    // a backup, say): the client starts over from a snapshot.
    if (since !== undefined && since <= head) subscribe(since, false);
    else await this.#snapshot(subscribe);
  }

  async #snapshot(subscribe: (from: string, snapshot: boolean) => void): Promise<void> {
    if (this.#ended) return;
    const at = await this.kv.currentVersionstamp();
    this.#held = [];
    subscribe(at, true);
    // Pages are cut by size, and each waits for the socket to drain, so a large namespace
    // reaches a slow client at its pace rather than overflowing what the server holds for it.
    let page: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (page.length === 0) return;
      this.#sendText(snapshotText(page));
      page = [];
      bytes = 0;
      while (!this.#ended && this.ws.bufferedAmount > SNAPSHOT_BYTES)
        await new Promise((resolve) => setTimeout(resolve, 5));
    };
    const add = async (entry: SyncEntry) => {
      const text = entryText(entry);
      page.push(text);
      bytes += text.length;
      if (page.length >= SNAPSHOT_PAGE || bytes >= SNAPSHOT_BYTES) await flush();
    };
    for (const prefix of this.#hello!.prefixes) {
      if (prefix.length > 0) {
        const own = await this.kv.get(prefix, { metadata: true });
        if (own.versionstamp !== null)
          await add(this.#entry(own.key, own.value, own.versionstamp, own.metadata));
      }
      for await (const entry of this.kv.list(
        { prefix },
        { metadata: true, batchSize: SNAPSHOT_PAGE },
      )) {
        if (this.#ended) return;
        await add(this.#entry(entry.key, entry.value, entry.versionstamp, entry.metadata));
      }
    }
    await flush();
    if (this.#ended) return;
    this.#send({ type: "snapshot-end", versionstamp: at });
    const held = this.#held;
    this.#held = null;
    for (const message of held) this.#send(message);
  }

  #entry(
    key: KvKey,
    value: unknown,
    versionstamp: string,
    metadata?: SyncEntry["metadata"],
  ): SyncEntry {
    return {
      key,
      value: this.applier.present(key, value),
      versionstamp,
      ...(metadata && { metadata }),
    };
  }

  #event(event: KvEvent): void {
    if (this.#prefixes.length > 1 && !this.#covers(event.key)) return;
    const entry: SyncEntry = event.entry
      ? this.#entry(event.key, event.entry.value, event.versionstamp, event.entry.metadata)
      : { key: event.key, value: null, versionstamp: event.versionstamp, deleted: true };
    if (this.#batch?.versionstamp !== event.versionstamp) {
      this.#flushBatch();
      this.#batch = { versionstamp: event.versionstamp, entries: [] };
      // Every event of a commit is delivered in one turn: send them together after it.
      queueMicrotask(() => this.#flushBatch());
    }
    this.#batch!.entries.push(entry);
  }

  #flushBatch(): void {
    const batch = this.#batch;
    if (!batch) return;
    this.#batch = null;
    this.#queue({ type: "changes", versionstamp: batch.versionstamp, entries: batch.entries });
  }

  /** Sends `message` after the changes before it, or holds it while a snapshot is sent. */
  #queue(message: ServerMessage): void {
    if (message.type === "progress") this.#flushBatch();
    if (this.#held) this.#held.push(message);
    else this.#send(message);
  }

  #send(message: ServerMessage): void {
    this.#sendText(encodeServerMessage(message));
  }

  #sendText(text: string): void {
    if (this.#ended || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(text);
    if (this.ws.bufferedAmount > this.options.maxBuffered)
      this.#close(CLOSE_TRY_LATER, closeReason("SLOW_CONSUMER", "reconnect to resume"));
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    const kvError = error instanceof KvError ? error : null;
    if (kvError)
      this.#send({ type: "error", error: { code: kvError.code, message: kvError.message } });
    closeWith(this.ws, error);
    this.#end();
  }

  #close(code: number, reason: string): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING)
      this.ws.close(code, reason);
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#unsubscribe();
    this.#release();
    if (this.#counted) this.metrics?.connections.dec();
  }
}
