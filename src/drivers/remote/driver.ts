/**
 * The remote driver: the driver contract spoken over HTTP to a Cellar server
 * (`wire/protocol.ts`), so `openKv("http://host:port")` gives the whole Kv API over the network.
 *
 * Reads issued in the same turn of the event loop travel in one request, and so do writes
 * (the server then group-commits them); requests go through a {@link Transport} (an undici pool
 * in Node, `fetch` in browsers), so many can be in flight at once. Change events arrive over one Server-Sent Events stream that
 * reconnects with `Last-Event-ID`, so no commit is missed across a reconnect.
 */
import { createParser } from "eventsource-parser";
import type {
  AtomicWrite,
  ChangeEvent,
  ChangePage,
  CommitResult,
  DeadMessage,
  Filter,
  KvDriver,
  KvIndexHost,
  LeasedMessage,
  QueueStats,
  RawEntry,
  RawRevision,
  ReadOptions,
  ReadRange,
  Settlement,
} from "../../contract/index.js";
import { KvError, type KvErrorCode } from "../../errors.js";
import {
  b64,
  changeFromWire,
  changePageFromWire,
  checkToWire,
  type DriverOp,
  enqueueToWire,
  entryFromWire,
  messageFromWire,
  mutationToWire,
  rangeCheckToWire,
  rangeToWire,
  revisionFromWire,
  type ServerInfo,
  unb64,
  type WireChange,
  type WireChangePage,
  type WireEntry,
  type WireMessage,
  type WireRevision,
  type WireWriteResult,
  whereOfFilter,
} from "../../wire/protocol.js";
import { remoteIndexHost } from "./indexes.js";
import { SocketChannel, type SocketConnector } from "./socket.js";
import type { Transport, TransportFactory, TransportResponse } from "./transport.js";

export interface RemoteDriverOptions {
  /** Bearer token; required when the server has a tokens file. */
  readonly token?: string;
  /** Connections kept open to the server (default 16). */
  readonly connections?: number;
  /** Reads or writes sent in one request at most (default 500). */
  readonly maxBatch?: number;
  /** The namespace to open, among those the token allows (sent as `X-Cellar-Namespace`). */
  readonly namespace?: string;
  /**
   * Send calls over the server's driver socket, one WebSocket, while it is up (default true in
   * Node; `cellar/client` always uses HTTP). `false`: HTTP only.
   */
  readonly socket?: boolean;
}

export interface RemoteDriver extends KvDriver {
  readonly info: ServerInfo;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/**
 * Connects to a Cellar server over `transport` and returns its driver, after asking the server
 * for the client's scope.
 *
 * @example
 * const driver = await connectRemote("http://127.0.0.1:8080", { token }, fetchTransport);
 */
export async function connectRemote(
  url: string,
  options: RemoteDriverOptions,
  transport: TransportFactory,
  connector?: SocketConnector,
): Promise<RemoteDriver> {
  let origin: URL;
  try {
    origin = new URL(url);
  } catch {
    throw new KvError("INVALID_ARGUMENT", `not a URL: ${url}`);
  }
  const client = new HttpClient(transport(origin, options.connections ?? 16), options);
  const info = await client.call<ServerInfo>("GET", "/api/driver/info");
  const socket =
    connector && options.socket !== false && info.socket
      ? new SocketChannel(origin, info.socket, client.credentials, connector)
      : null;
  // The first calls go over the socket when it opens soon; a server slow to answer the upgrade
  // does not hold the open up (calls go over HTTP until the socket is ready).
  if (socket) await Promise.race([socket.connect(), delay(SOCKET_WAIT_MS)]);
  return new Remote(new Caller(client, socket), info, options.maxBatch ?? 500);
}

class HttpClient {
  readonly #transport: Transport;
  readonly #headers: Record<string, string>;
  /** The token and namespace headers, which the driver socket's upgrade sends too. */
  readonly credentials: Record<string, string>;

  constructor(transport: Transport, options: RemoteDriverOptions) {
    this.#transport = transport;
    this.credentials = {
      ...(options.token && { authorization: `Bearer ${options.token}` }),
      ...(options.namespace !== undefined && { "x-cellar-namespace": options.namespace }),
    };
    this.#headers = { "content-type": "application/json", ...this.credentials };
  }

  call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    return this.send<T>(method, path, body === undefined ? undefined : JSON.stringify(body));
  }

  /** A request whose body is JSON text already. */
  async send<T>(method: "GET" | "POST", path: string, body?: string): Promise<T> {
    let response: TransportResponse;
    try {
      response = await this.#transport.request({
        method,
        path,
        headers: this.#headers,
        ...(body !== undefined && { body }),
      });
    } catch (cause) {
      throw new KvError("UNAVAILABLE", `cannot reach the server: ${(cause as Error).message}`, {
        cause,
      });
    }
    const text = await response.text();
    if (response.status >= 200 && response.status < 300) return JSON.parse(text) as T;
    throw errorFrom(response.status, text);
  }

  /** Opens a streaming GET; the caller reads the body. */
  stream(
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<TransportResponse> {
    return this.#transport.request({
      method: "GET",
      path,
      headers: { ...this.#headers, ...headers },
      signal,
    });
  }

  close(): Promise<void> {
    return this.#transport.close();
  }
}

/** How long opening waits for the driver socket before it goes on over HTTP. */
const SOCKET_WAIT_MS = 2000;

const delay = (ms: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    (timer as { unref?: () => void }).unref?.();
  });

/** Calls that only read, which a dropped socket's driver sends again. */
const READS = new Set<DriverOp>(["info", "read", "count", "history", "queues", "changes"]);
const QUEUE_READS = new Set(["stats", "listDead", "getDead"]);
const INDEX_READS = new Set(["listIndexes", "listSearchIndexes", "search", "explain", "walk"]);

function onlyReads(op: DriverOp, body: Record<string, unknown>): boolean {
  if (op === "queue") return QUEUE_READS.has(body.op as string);
  if (op === "indexes") return INDEX_READS.has(body.op as string);
  return READS.has(op);
}

/** Sends each driver call over the socket while it is up, else as `POST /api/driver/<op>`. */
class Caller {
  constructor(
    readonly http: HttpClient,
    private readonly socket: SocketChannel | null,
  ) {}

  call<T>(op: DriverOp, body: Record<string, unknown>): Promise<T> {
    return this.#send(op, JSON.stringify(body), onlyReads(op, body)) as Promise<T>;
  }

  #send(op: DriverOp, body: string, retry: boolean): Promise<unknown> {
    const sent = this.socket?.call(op, body, retry, () => this.#send(op, body, retry));
    return sent ?? this.http.send("POST", `/api/driver/${op}`, body);
  }

  async close(): Promise<void> {
    this.socket?.close();
    await this.http.close();
  }
}

function errorFrom(status: number, text: string): KvError {
  try {
    const { error } = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (error?.code && error.message) return new KvError(error.code as KvErrorCode, error.message);
  } catch {
    // Not a Cellar error body: fall through.
  }
  return new KvError(
    status >= 500 ? "UNAVAILABLE" : "INVALID_REQUEST",
    `server answered ${status}: ${text.slice(0, 200)}`,
  );
}

/** Collects calls made in one turn of the event loop and sends them in batches. */
class Batcher<I, O> {
  #queue: { input: I; waiter: Waiter<O> }[] = [];
  #scheduled = false;

  constructor(
    private readonly max: number,
    private readonly send: (inputs: I[]) => Promise<O[]>,
  ) {}

  push(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ input, waiter: { resolve, reject } });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (let i = 0; i < queue.length; i += this.max) {
      const batch = queue.slice(i, i + this.max);
      this.send(batch.map((item) => item.input)).then(
        (outputs) => {
          for (const [j, item] of batch.entries()) item.waiter.resolve(outputs[j]!);
        },
        (error) => {
          for (const item of batch) item.waiter.reject(error);
        },
      );
    }
  }
}

class Remote implements RemoteDriver {
  readonly #client: Caller;
  readonly #listeners = new Set<(change: ChangeEvent) => void>();
  readonly #reads: Batcher<{ range: ReadRange; metadata: boolean; now: number }, RawEntry[]>;
  readonly #writes: Batcher<AtomicWrite, WireWriteResult>;
  #feed: AbortController | null = null;
  /** The server keeps the indexes: index calls go to it (`POST /api/driver/indexes`). */
  readonly indexHost: KvIndexHost = remoteIndexHost((namespace, op, args) =>
    this.#client.call("indexes", { namespace, op, args }),
  );
  /** Resolves once the change stream is connected; `null` when none is connecting. */
  #feedReady: Promise<void> | null = null;
  #closed = false;

  constructor(
    client: Caller,
    readonly info: ServerInfo,
    maxBatch: number,
  ) {
    this.#client = client;
    this.#reads = new Batcher(maxBatch, async (items) => {
      // One request per metadata flag, since the flag applies to a whole request.
      const out: RawEntry[][] = new Array(items.length);
      for (const metadata of [false, true]) {
        const indexes = items.flatMap((item, i) => (item.metadata === metadata ? [i] : []));
        if (indexes.length === 0) continue;
        const { results } = await this.#client.call<{ results: WireEntry[][] }>("read", {
          ranges: indexes.map((i) => rangeToWire(items[i]!.range)),
          metadata,
          now: items[indexes[0]!]!.now,
        });
        indexes.forEach((index, j) => {
          out[index] = (results[j] ?? []).map(entryFromWire);
        });
      }
      return out;
    });
    this.#writes = new Batcher(maxBatch, async (writes) => {
      const { results } = await this.#client.call<{ results: WireWriteResult[] }>("write", {
        writes: writes.map((w) => ({
          checks: w.checks.map(checkToWire),
          ...(w.rangeChecks && { rc: w.rangeChecks.map(rangeCheckToWire) }),
          mutations: w.mutations.map(mutationToWire),
          ...(w.enqueues && { enqueues: w.enqueues.map(enqueueToWire) }),
          now: w.now,
        })),
      });
      return results;
    });
  }

  async snapshotRead(ranges: readonly ReadRange[], options: ReadOptions): Promise<RawEntry[][]> {
    this.#assertOpen();
    const metadata = options.metadata === true;
    if (ranges.length === 1)
      return [await this.#reads.push({ range: ranges[0]!, metadata, now: options.now })];
    // Several ranges must come from one snapshot: send them together, unbatched.
    const { results } = await this.#client.call<{ results: WireEntry[][] }>("read", {
      ranges: ranges.map(rangeToWire),
      metadata,
      now: options.now,
    });
    return results.map((entries) => entries.map(entryFromWire));
  }

  async count(
    range: { start: Uint8Array; end: Uint8Array; where?: Filter },
    options: ReadOptions,
  ): Promise<number> {
    this.#assertOpen();
    const { count } = await this.#client.call<{ count: number }>("count", {
      start: b64(range.start),
      end: b64(range.end),
      now: options.now,
      ...(range.where && { where: whereOfFilter(range.where) }),
    });
    return count;
  }

  async atomicWrite(write: AtomicWrite): Promise<CommitResult | null> {
    this.#assertOpen();
    // A listener added just before this write hears of it only once its stream is connected.
    if (this.#feedReady) await this.#feedReady;
    const result = await this.#writes.push(write);
    if ("vs" in result)
      return { versionstamp: result.vs, ...(result.enqueued && { enqueued: result.enqueued }) };
    if ("failed" in result) return null;
    throw new KvError(result.error.code as KvErrorCode, result.error.message);
  }

  async history(
    key: Uint8Array,
    { limit, now }: { limit: number; now: number; withValues: boolean },
  ): Promise<RawRevision[]> {
    this.#assertOpen();
    const { revisions } = await this.#client.call<{ revisions: WireRevision[] }>("history", {
      key: b64(key),
      limit,
      now,
    });
    return revisions.map(revisionFromWire);
  }

  async dequeue(
    queue: Uint8Array,
    options: { now: number; visibilityTimeout: number; limit: number },
  ): Promise<LeasedMessage[]> {
    const { messages } = await this.#queueOp<{ messages: WireMessage<LeasedMessage>[] }>(queue, {
      op: "dequeue",
      ...options,
    });
    return messages.map((m) => messageFromWire(m));
  }

  async settle(
    queue: Uint8Array,
    token: string,
    settlement: Settlement,
    now: number,
  ): Promise<boolean> {
    return (await this.#queueOp<{ ok: boolean }>(queue, { op: "settle", token, settlement, now }))
      .ok;
  }

  queueStats(queue: Uint8Array, now: number): Promise<QueueStats> {
    return this.#queueOp<QueueStats>(queue, { op: "stats", now });
  }

  async listDead(
    queue: Uint8Array,
    options: { limit: number; after?: string },
  ): Promise<DeadMessage[]> {
    const { messages } = await this.#queueOp<{ messages: WireMessage<DeadMessage>[] }>(queue, {
      op: "listDead",
      ...options,
    });
    return messages.map((m) => messageFromWire(m));
  }

  async getDead(queue: Uint8Array, id: string): Promise<DeadMessage | null> {
    const { message } = await this.#queueOp<{ message: WireMessage<DeadMessage> | null }>(queue, {
      op: "getDead",
      id,
    });
    return message && messageFromWire(message);
  }

  async requeueDead(
    queue: Uint8Array,
    ids: readonly string[] | null,
    now: number,
  ): Promise<number> {
    return (await this.#queueOp<{ count: number }>(queue, { op: "requeueDead", ids, now })).count;
  }

  async deleteDead(queue: Uint8Array, ids: readonly string[] | null): Promise<number> {
    return (await this.#queueOp<{ count: number }>(queue, { op: "deleteDead", ids })).count;
  }

  #queueOp<T>(queue: Uint8Array, body: Record<string, unknown>): Promise<T> {
    this.#assertOpen();
    return this.#client.call<T>("queue", { queue: b64(queue), ...body });
  }

  async deleteExpired(now: number): Promise<number> {
    this.#assertOpen();
    return (await this.#client.call<{ deleted: number }>("sweep", { now })).deleted;
  }

  async purge(prefix: Uint8Array, now: number): Promise<number> {
    this.#assertOpen();
    return (
      await this.#client.call<{ purged: number }>("purge", {
        prefix: b64(prefix),
        now,
      })
    ).purged;
  }

  async readChanges(after: string, limit: number): Promise<ChangePage> {
    this.#assertOpen();
    // A listener's stream starts at the server's head when it connects: a page read before that
    // could end below it, and the commits in between would reach neither. So wait for it.
    if (this.#feedReady) await this.#feedReady;
    return changePageFromWire(await this.#client.call<WireChangePage>("changes", { after, limit }));
  }

  onChange(listener: (change: ChangeEvent) => void): () => void {
    this.#listeners.add(listener);
    if (!this.#feed && !this.#closed) this.#startFeed();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#feed?.abort();
        this.#feed = null;
      }
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#feed?.abort();
    this.#listeners.clear();
    await this.#client.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvError("DATABASE_CLOSED", "the database is closed");
  }

  /** Follows the server's change stream, reconnecting from the last seen versionstamp. */
  #startFeed(): void {
    const controller = new AbortController();
    this.#feed = controller;
    let resolveReady = () => {};
    const connecting = new Promise<void>((resolve) => {
      resolveReady = resolve;
      // A server that cannot stream does not hold reads up for long.
      setTimeout(resolve, 5000).unref?.();
    });
    this.#feedReady = connecting;
    const ready = () => {
      resolveReady();
      if (this.#feedReady === connecting) this.#feedReady = null;
    };
    controller.signal.addEventListener("abort", () => ready());
    let lastId: string | undefined;
    let delay = 50;
    const run = async () => {
      while (!controller.signal.aborted) {
        try {
          const response = await this.#client.http.stream(
            `/api/driver/changes/stream`,
            lastId ? { "last-event-id": lastId } : {},
            controller.signal,
          );
          if (response.status !== 200) throw errorFrom(response.status, await response.text());
          delay = 50;
          const parser = createParser({
            onEvent: (event) => {
              if (event.id) lastId = event.id;
              if (event.event === "ready") ready();
              if (event.event === "change")
                this.#emit(changeFromWire(JSON.parse(event.data) as WireChange));
              if (event.event === "reset")
                this.#emit({ versionstamp: event.id ?? "", keys: [], reset: true });
              if (event.event === "queue")
                this.#emit({ versionstamp: "", keys: [], queues: [unb64(event.data)] });
            },
          });
          const decoder = new TextDecoder();
          for await (const chunk of response.chunks())
            parser.feed(decoder.decode(chunk, { stream: true }));
        } catch {
          if (controller.signal.aborted) return;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 2000);
      }
    };
    void run();
  }

  #emit(change: ChangeEvent): void {
    for (const listener of this.#listeners) listener(change);
  }

  async listQueues(
    range: { start: Uint8Array; end: Uint8Array },
    limit: number,
  ): Promise<Uint8Array[]> {
    this.#assertOpen();
    const { queues } = await this.#client.call<{ queues: string[] }>("queues", {
      start: b64(range.start),
      end: b64(range.end),
      limit,
    });
    return queues.map((name) => unb64(name));
  }
}
