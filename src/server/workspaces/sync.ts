/**
 * Workspace sync over WebSocket at `/workspaces/{id}/sync`: y-protocols' sync (steps 1 and 2,
 * updates) and awareness in y-websocket's framing, on the server's port and upgrades beside the
 * events socket, each connection a peer of its workspace's room (`rooms.ts`).
 *
 * - On connecting, the server sends its step 1 and the awareness states; it answers a client's
 *   step 1 with a step 2 once every update the connection sent before it is committed, so that
 *   answer acknowledges them (`connectDoc().flush()` relies on it).
 * - A client's update (or step 2) is checked against the workspace's definition, applied, and
 *   committed before anyone else receives it; one that breaks the schema is applied with the
 *   repair `checkUpdate` makes, which is sent back to the sender, so no replica keeps a bad value.
 * - A read token receives everything; an update of its that would change the document is
 *   refused: an auth message (permission denied, as y-protocols defines it), then close 4403.
 *   Its awareness (presence) is relayed like anyone's.
 *
 * The upgrade is accepted before authentication so that every refusal reaches a browser as a
 * close code and reason (`CODE: message`), which it can read, where an HTTP status it cannot:
 * 4400 a malformed message, 4401 no or a bad token, 4403 a token without access to
 * `workspace-{id}` (or a page of another origin), 4404 an unknown workspace; y-websocket does not
 * reconnect after 44xx. 1001 the server is shutting down, 1009 a message over `maxPayload`,
 * 1011 an update the server could not store, 1013 the server is full or the client reads too
 * slowly: it reconnects after those. A request that is no WebSocket handshake gets the HTTP 4xx
 * every route answers.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import type { WebSocket } from "ws";
import * as auth from "y-protocols/auth";
import * as sync from "y-protocols/sync";
import * as Y from "yjs";
import { bareMessage, KvError } from "../../errors.js";
import { type Authenticator, assertAccess, NAMESPACE_HEADER } from "../../http/auth.js";
import type { StreamRegistry } from "../../http/streams.js";
import { workspaceNamespace } from "../../workspace/client.js";
import {
  CLOSE_CODES,
  CLOSE_GOING_AWAY,
  CLOSE_SERVER_ERROR,
  CLOSE_TRY_LATER,
  closeReason,
  MESSAGE_AUTH,
  MESSAGE_AWARENESS,
  MESSAGE_QUERY_AWARENESS,
  MESSAGE_SYNC,
} from "../../workspace/protocol.js";
import { assertOrigin, header, socketRoute, type UpgradeRoute } from "../websocket.js";
import { type Peer, type Room, type Rooms, updateMessage } from "./rooms.js";

export interface SyncSocketOptions {
  readonly rooms: Rooms;
  readonly authenticate: Authenticator;
  /** The origins the server's CORS setting allows (`"*"`: any), whose pages may connect too. */
  readonly cors: readonly string[];
  /** Connections count as streams: shutdown closes them, and the server's limit applies. */
  readonly streams: StreamRegistry;
  /** The largest message a client may send, in bytes (the server's body limit). */
  readonly maxPayload: number;
  /** Bytes a connection may hold unsent before it is closed (1013) to resync later. */
  readonly maxBuffered: number;
  /** Milliseconds between pings; a connection that misses one is dropped (default 30 s). */
  readonly pingInterval?: number;
}

const SYNC_PATH = /^\/workspaces\/([^/]+)\/sync$/;
/** How long a closing socket may take to answer the close frame at shutdown. */
const CLOSE_GRACE_MS = 1000;

/**
 * The upgrade route of `/workspaces/{id}/sync`.
 *
 * @example
 * acceptEventSockets(server, eventSockets, [syncSockets({ rooms, authenticate, cors, streams, maxPayload, maxBuffered })]);
 */
export function syncSockets(options: SyncSocketOptions): UpgradeRoute {
  return socketRoute(
    options.maxPayload,
    (url) => SYNC_PATH.exec(url.pathname),
    (ws, req, url, match) => {
      let id: string;
      let canWrite: boolean;
      try {
        id = decodeURIComponent(match[1]!);
        canWrite = admit(req, url, id, options);
      } catch (error) {
        close(ws, error);
        return;
      }
      void new Connection(ws, id, canWrite, options).start();
    },
  );
}

/**
 * Checks the page's origin, the workspace and the token before anything is sent; returns
 * whether the token may write.
 */
function admit(req: IncomingMessage, url: URL, id: string, options: SyncSocketOptions): boolean {
  assertOrigin(req, options.cors, `sync workspace ${JSON.stringify(id)}`);
  const namespace = workspaceNamespace(id);
  const { scope } = options.authenticate({
    authorization: req.headers.authorization,
    // The path names the namespace; a header may still name it (or another, refused below).
    namespace: header(req, NAMESPACE_HEADER) ?? namespace,
    host: req.headers.host,
    queryToken: () => url.searchParams.get("token") ?? undefined,
  });
  assertAccess(scope, "read");
  // Only then: which workspaces exist is not for a client without a token to learn.
  options.rooms.definition(id);
  if (!scope.allows(namespace))
    throw new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(namespace)}`);
  return scope.access !== "read";
}

class Connection implements Peer {
  readonly #ws: WebSocket;
  readonly #id: string;
  readonly #options: SyncSocketOptions;
  readonly #canWrite: boolean;
  #room: Room | null = null;
  /** Messages that arrived while the room was opening, handled in order once it is open. */
  #early: Uint8Array[] | null = [];
  /** Answers to step 1s, sent in order, each after the commits before it. */
  #answers: Promise<void> = Promise.resolve();
  #release: () => void = () => {};
  #alive = true;
  #ended = false;
  #corked = false;

  constructor(ws: WebSocket, id: string, canWrite: boolean, options: SyncSocketOptions) {
    this.#ws = ws;
    this.#id = id;
    this.#canWrite = canWrite;
    this.#options = options;
  }

  async start(): Promise<void> {
    const ws = this.#ws;
    ws.on("message", (data: Buffer) => {
      const message = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (this.#early) this.#early.push(message);
      else this.#receive(message);
    });
    ws.on("close", () => this.#end());
    ws.on("pong", () => {
      this.#alive = true;
    });
    try {
      this.#release = this.#options.streams.add(() => {
        this.#closeWith(CLOSE_GOING_AWAY, "the server is shutting down");
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      });
    } catch (error) {
      this.#fail(error);
      return;
    }
    const ping = setInterval(() => {
      if (!this.#alive) ws.terminate();
      this.#alive = false;
      ws.ping();
    }, this.#options.pingInterval ?? 30_000);
    ping.unref();
    ws.once("close", () => clearInterval(ping));
    let room: Room;
    try {
      room = await this.#options.rooms.acquire(this.#id);
    } catch (error) {
      this.#fail(error);
      return;
    }
    if (this.#ended) {
      this.#options.rooms.release(this.#id);
      return;
    }
    this.#room = room;
    room.join(this);
    const hello = encoding.createEncoder();
    encoding.writeVarUint(hello, MESSAGE_SYNC);
    sync.writeSyncStep1(hello, room.doc);
    this.send(encoding.toUint8Array(hello));
    const presence = room.awarenessMessage();
    if (presence) this.send(presence);
    const early = this.#early ?? [];
    this.#early = null;
    for (const message of early) this.#receive(message);
  }

  send(message: Uint8Array): void {
    const ws = this.#ws;
    if (this.#ended || ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > this.#options.maxBuffered) {
      this.#closeWith(CLOSE_TRY_LATER, closeReason("SLOW_CONSUMER", "reconnect to resync"));
      return;
    }
    this.#cork();
    ws.send(message, { binary: true });
  }

  /**
   * Holds the socket's writes until the current tick's callbacks have run: the updates one commit
   * releases go out in one system call rather than one each, which is most of a broadcast's cost.
   * `ws` has no API for it, so this reaches for its socket.
   */
  #cork(): void {
    if (this.#corked) return;
    const socket = (this.#ws as unknown as { _socket?: Duplex })._socket;
    if (typeof socket?.cork !== "function") return;
    this.#corked = true;
    socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      socket.uncork();
    });
  }

  #receive(message: Uint8Array): void {
    if (this.#ended) return;
    try {
      this.#handle(decoding.createDecoder(message));
    } catch (error) {
      this.#fail(
        error instanceof KvError
          ? error
          : new KvError("INVALID_REQUEST", `a malformed message: ${bareMessage(error as Error)}`),
      );
    }
  }

  #handle(decoder: decoding.Decoder): void {
    const room = this.#room!;
    const type = decoding.readVarUint(decoder);
    if (type === MESSAGE_SYNC) {
      const step = decoding.readVarUint(decoder);
      const payload = decoding.readVarUint8Array(decoder);
      if (step === sync.messageYjsSyncStep1) this.#answer(room, payload);
      else if (step === sync.messageYjsSyncStep2 || step === sync.messageYjsUpdate)
        this.#update(room, payload);
      else throw new KvError("INVALID_REQUEST", `unknown sync message type ${step}`);
    } else if (type === MESSAGE_AWARENESS) {
      room.applyAwareness(decoding.readVarUint8Array(decoder), this);
    } else if (type === MESSAGE_QUERY_AWARENESS) {
      const presence = room.awarenessMessage();
      if (presence) this.send(presence);
    } else if (type !== MESSAGE_AUTH) {
      throw new KvError("INVALID_REQUEST", `unknown message type ${type}`);
    }
  }

  /** Answers a step 1 once what came before it is committed. */
  #answer(room: Room, stateVector: Uint8Array): void {
    this.#answers = this.#answers
      .then(() => room.committed())
      .then(
        () => {
          const encoder = encoding.createEncoder();
          encoding.writeVarUint(encoder, MESSAGE_SYNC);
          sync.writeSyncStep2(encoder, room.doc, stateVector);
          this.send(encoding.toUint8Array(encoder));
        },
        (error) => this.#fail(error),
      );
  }

  #update(room: Room, update: Uint8Array): void {
    if (!this.#canWrite) {
      // A read client's step 2 holds what it already got from the server: nothing new.
      if (Y.snapshotContainsUpdate(Y.snapshot(room.doc), update)) return;
      this.#refuseWrite();
      return;
    }
    room.apply(update, this).then(
      ({ repair }) => {
        if (repair) this.send(updateMessage(repair));
      },
      (error) => this.#fail(error),
    );
  }

  #refuseWrite(): void {
    const reason = `this token has read access; changing workspace ${JSON.stringify(this.#id)} needs write`;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MESSAGE_AUTH);
    auth.writePermissionDenied(encoder, reason);
    this.send(encoding.toUint8Array(encoder));
    this.#closeWith(CLOSE_CODES.FORBIDDEN!, closeReason("FORBIDDEN", reason));
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    const code = closeCodeOf(error);
    const kvError = error instanceof KvError ? error : null;
    this.#closeWith(
      code,
      closeReason(kvError?.code ?? "UNAVAILABLE", kvError ? kvError.message : "server error"),
    );
  }

  #closeWith(code: number, reason: string): void {
    const ws = this.#ws;
    this.#end();
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#release();
    if (this.#room) {
      this.#room.leave(this);
      this.#options.rooms.release(this.#id);
    }
  }
}

function close(ws: WebSocket, error: unknown): void {
  const kvError = error instanceof KvError ? error : null;
  ws.close(
    closeCodeOf(error),
    closeReason(kvError?.code ?? "UNAVAILABLE", kvError ? kvError.message : "server error"),
  );
}

/** The close code of a refusal: 44xx for the client's mistakes, 1013 or 1011 for the server's. */
function closeCodeOf(error: unknown): number {
  if (!(error instanceof KvError)) return CLOSE_SERVER_ERROR;
  const code = CLOSE_CODES[error.code];
  if (code !== undefined) return code;
  if (error.code === "LIMIT_EXCEEDED" || error.code === "SLOW_CONSUMER") return CLOSE_TRY_LATER;
  if (error.code === "DATABASE_CLOSED") return CLOSE_GOING_AWAY;
  if (error.code === "INVALID_VALUE") return CLOSE_CODES.INVALID_REQUEST!;
  return CLOSE_SERVER_ERROR;
}
