/**
 * A workspace's Y.Doc synced with a Cellar server over WebSocket, by y-websocket's client: sync
 * steps 1 and 2, updates and awareness at `/workspaces/{id}/sync`, reconnecting with a growing
 * pause after a network failure and catching up on what it missed (and sending what it edited
 * offline) when it is back.
 *
 * In Node the socket is `ws`'s, which sends the token as `Authorization: Bearer`; a browser's
 * `WebSocket` cannot send headers, so there the token goes as `?token=`. BroadcastChannel
 * between tabs is off: every edit goes through the server, which validates and stores it.
 *
 * `flush()` asks the server for its state (a sync step 1) after everything this client sent: the
 * server handles one connection's messages in order and answers a step 1 only once the updates
 * before it are committed, so the answer acknowledges them.
 */
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import { Awareness } from "y-protocols/awareness";
import * as sync from "y-protocols/sync";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import type { KvError } from "../errors.js";
import { closeError, MESSAGE_SYNC } from "./protocol.js";

export interface ConnectDocOptions {
  /** A token with read or write access to the workspace's namespace `workspace-{id}`. */
  readonly token?: string;
  /** The doc to sync (default: a new one). */
  readonly doc?: Y.Doc;
  /** Presence shared with the other clients (default: a new `Awareness` of the doc). */
  readonly awareness?: Awareness;
  /** The longest pause between reconnection attempts, in ms (default 2500). */
  readonly maxBackoffTime?: number;
  /** The WebSocket class (default: `ws` in Node, the global one elsewhere). */
  readonly WebSocket?: WebSocketClass;
}

type WebSocketClass = typeof WebSocket;

export interface RemoteDoc {
  readonly doc: Y.Doc;
  readonly awareness: Awareness;
  /**
   * Resolves once the doc holds the server's state (the first sync); rejects if the server
   * refuses the connection for good (a bad token, an unknown workspace: a `KvError`).
   */
  readonly whenSynced: Promise<void>;
  /** Whether the connection is open and the doc holds the server's state. */
  readonly synced: boolean;
  /**
   * Resolves once the server has committed every update this doc made before the call
   * (waiting for a connection if there is none).
   */
  flush(): Promise<void>;
  /** Disconnects for good. The doc stays usable; destroying it is the caller's business. */
  close(): Promise<void>;
}

/**
 * Connects a Y.Doc to workspace `workspaceId` of the Cellar server at `url`.
 *
 * @example
 * const remote = connectDoc("http://127.0.0.1:8080", "app", { token });
 * await remote.whenSynced;
 * remote.doc.getText("notes").insert(0, "hello");
 * await remote.flush(); // stored by the server
 * await remote.close();
 */
export function connectDoc(
  url: string | URL,
  workspaceId: string,
  options: ConnectDocOptions = {},
): RemoteDoc {
  const doc = options.doc ?? new Y.Doc();
  const awareness = options.awareness ?? new Awareness(doc);
  const connection = new Connection(doc, awareness, options.awareness === undefined);
  connection.start(url, workspaceId, options);
  return connection;
}

interface FlushWaiter {
  /** The step 1 whose answer acknowledges the flush (0: not sent yet on this connection). */
  target: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

class Connection implements RemoteDoc {
  readonly doc: Y.Doc;
  readonly awareness: Awareness;
  readonly whenSynced: Promise<void>;
  #provider: WebsocketProvider | null = null;
  #closed = false;
  #failure: KvError | null = null;
  #synced!: () => void;
  #refused!: (error: KvError) => void;
  /** Step 1s sent and step 2s received on the current connection. */
  #asked = 0;
  #answered = 0;
  /** The server's step 1 was answered: this client's offline edits are on their way. */
  #ready = false;
  readonly #flushes: FlushWaiter[] = [];
  /** The awareness was made here, and its timer ends with the connection. */
  readonly #ownAwareness: boolean;

  constructor(doc: Y.Doc, awareness: Awareness, ownAwareness: boolean) {
    this.doc = doc;
    this.awareness = awareness;
    this.#ownAwareness = ownAwareness;
    this.whenSynced = new Promise<void>((resolve, reject) => {
      this.#synced = resolve;
      this.#refused = reject;
    });
    // Nobody need await it: a refusal is also reported by flush() and the close code.
    this.whenSynced.catch(() => {});
  }

  get synced(): boolean {
    return this.#provider?.synced ?? false;
  }

  start(url: string | URL, workspaceId: string, options: ConnectDocOptions): void {
    const base = new URL(url);
    base.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    base.pathname = `${base.pathname.replace(/\/+$/, "")}/workspaces`;
    const params: Record<string, string> = {};
    void socketClass(options).then(
      ({ WebSocket, sendsHeaders }) => {
        if (this.#closed) return;
        if (options.token !== undefined && !sendsHeaders) params.token = options.token;
        const provider = new WebsocketProvider(
          base.href,
          `${encodeURIComponent(workspaceId)}/sync`,
          this.doc,
          {
            awareness: this.awareness,
            params,
            disableBc: true,
            WebSocketPolyfill:
              sendsHeaders && options.token !== undefined
                ? withBearer(WebSocket, options.token)
                : WebSocket,
            ...(options.maxBackoffTime !== undefined && {
              maxBackoffTime: options.maxBackoffTime,
            }),
          },
        );
        this.#watch(provider);
        this.#provider = provider;
      },
      (error: Error) => this.#fail(error as KvError),
    );
  }

  #watch(provider: WebsocketProvider): void {
    provider.on("sync", (synced: boolean) => {
      if (synced) this.#synced();
    });
    provider.on("status", ({ status }: { status: string }) => {
      if (status !== "connected") return;
      // y-websocket sends its step 1 as it reports the connection.
      this.#asked = 1;
      this.#answered = 0;
      this.#ready = false;
    });
    provider.on("connection-close", () => {
      this.#ready = false;
      for (const waiter of this.#flushes) waiter.target = 0;
    });
    provider.on("closed", ({ code, reason }: { code: number; reason: string }) => {
      this.#fail(closeError(code, reason));
    });
    const handleSync = provider.messageHandlers[MESSAGE_SYNC]!;
    provider.messageHandlers[MESSAGE_SYNC] = (encoder, decoder, p, emitSynced, type) => {
      const step = decoding.peekVarUint(decoder);
      handleSync(encoder, decoder, p, emitSynced, type);
      if (step === sync.messageYjsSyncStep2) this.#answer();
      else if (step === sync.messageYjsSyncStep1) {
        // The answer (this client's step 2) is sent when this handler returns.
        queueMicrotask(() => this.#becomeReady());
      }
    };
  }

  flush(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      const waiter: FlushWaiter = { target: 0, resolve, reject };
      this.#flushes.push(waiter);
      if (this.#ready) this.#ask(waiter);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#provider?.destroy();
    if (this.#ownAwareness) this.awareness.destroy();
    for (const waiter of this.#flushes.splice(0)) waiter.reject(closedError());
  }

  #becomeReady(): void {
    if (this.#ready || !this.#provider?.wsconnected) return;
    this.#ready = true;
    for (const waiter of this.#flushes) if (waiter.target === 0) this.#ask(waiter);
  }

  /** Sends a step 1 whose answer settles `waiter`. */
  #ask(waiter: FlushWaiter): void {
    const ws = this.#provider?.ws;
    if (!ws || ws.readyState !== ws.OPEN) return;
    ws.send(createSyncStep1(this.doc));
    waiter.target = ++this.#asked;
  }

  #answer(): void {
    this.#answered++;
    for (let i = this.#flushes.length - 1; i >= 0; i--) {
      const waiter = this.#flushes[i]!;
      if (waiter.target === 0 || waiter.target > this.#answered) continue;
      this.#flushes.splice(i, 1);
      waiter.resolve();
    }
  }

  #fail(error: KvError): void {
    this.#failure = error;
    this.#refused(error);
    for (const waiter of this.#flushes.splice(0)) waiter.reject(error);
  }
}

function createSyncStep1(doc: Y.Doc): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  sync.writeSyncStep1(encoder, doc);
  return encoding.toUint8Array(encoder);
}

function closedError(): KvError {
  return closeError(1000, "DATABASE_CLOSED: the connection was closed");
}

/** `ws` in Node, which can send headers; the platform's WebSocket elsewhere. */
async function socketClass(
  options: ConnectDocOptions,
): Promise<{ WebSocket: WebSocketClass; sendsHeaders: boolean }> {
  if (options.WebSocket) return { WebSocket: options.WebSocket, sendsHeaders: false };
  const host = globalThis as { process?: { versions?: { node?: string } } };
  if (host.process?.versions?.node === undefined)
    return { WebSocket: globalThis.WebSocket, sendsHeaders: false };
  const { WebSocket } = await import("ws");
  return { WebSocket: WebSocket as unknown as WebSocketClass, sendsHeaders: true };
}

/** `ws`'s class with the token in an Authorization header, as y-websocket constructs it. */
function withBearer(WebSocket: WebSocketClass, token: string): WebSocketClass {
  const Ws = WebSocket as unknown as new (
    url: string | URL,
    protocols: string | string[] | undefined,
    options: { headers: Record<string, string> },
  ) => WebSocket;
  return class extends Ws {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { headers: { authorization: `Bearer ${token}` } });
    }
  } as unknown as WebSocketClass;
}
