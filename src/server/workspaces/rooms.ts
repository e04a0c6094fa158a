/**
 * One room per open workspace: the persisted Y.Doc of namespace `workspace-{id}`, its awareness,
 * and the peers (sync connections) it sends to. The WebSocket route and the REST routes work on
 * the same room, so a REST write reaches sync clients at once and the other way round.
 *
 * Every change to the doc is sent to the peers once it is committed: changes made here (a peer's
 * update, a REST write) after their commit, changes other servers committed (arriving with the
 * PERSIST origin) at once. A room closes (writing what it holds) once no peer and no request
 * has used it for `idleMs`.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import * as encoding from "lib0/encoding";
import * as awarenessProtocol from "y-protocols/awareness";
import * as sync from "y-protocols/sync";
import * as Y from "yjs";
import type { Kv } from "../../core/kv.js";
import { warn } from "../../core/warn.js";
import { KvError } from "../../errors.js";
import type { ValidationIssue } from "../../typed/schemas.js";
import { workspaceNamespace } from "../../workspace/client.js";
import type { AnyWorkspace } from "../../workspace/define.js";
import { bindWorkspace, checkUpdate } from "../../workspace/doc.js";
import { openPersistedDoc, PERSIST, type PersistedDoc } from "../../workspace/persist.js";
import { MESSAGE_AWARENESS, MESSAGE_SYNC } from "../../workspace/protocol.js";
import { mirrorToSqlite, type SqliteMirror } from "../../workspace/sqlite-mirror.js";

/** A sync connection, as a room sees it. */
export interface Peer {
  send(message: Uint8Array): void;
}

export interface RoomOptions {
  /** How long a room stays open with nobody using it, in ms (default 30 s). */
  readonly idleMs?: number;
  /**
   * A folder where each workspace's document is mirrored into SQL tables, `<folder>/<id>.sqlite`
   * (see `workspace/sqlite-mirror.ts`). Mirrored workspaces open with the server and stay open.
   */
  readonly mirrorDir?: string;
}

/**
 * What a checked update did: the issues of the part the schema refused, and the repair applied
 * with it (which the sender has not seen), or none.
 */
export interface Applied {
  readonly issues: readonly ValidationIssue[];
  readonly repair: Uint8Array | null;
}

export class Room {
  readonly id: string;
  readonly definition: AnyWorkspace;
  readonly stored: PersistedDoc;
  readonly awareness: awarenessProtocol.Awareness;
  readonly peers = new Set<Peer>();
  /** The SQL mirror of the doc, when the server keeps one. */
  mirror: SqliteMirror | null = null;
  /** The awareness client ids each peer set, removed when it leaves. */
  readonly #controlled = new Map<Peer, Set<number>>();
  #closed = false;

  constructor(id: string, definition: AnyWorkspace, stored: PersistedDoc) {
    this.id = id;
    this.definition = definition;
    this.stored = stored;
    this.awareness = new awarenessProtocol.Awareness(stored.doc);
    // The server is no participant: it has no presence of its own.
    this.awareness.setLocalState(null);
    stored.doc.on("update", this.#onUpdate);
    this.awareness.on("update", this.#onAwareness);
  }

  get doc(): Y.Doc {
    return this.stored.doc;
  }

  /**
   * Applies a peer's (or a request's) update to the doc, checked against the definition: an
   * update that breaks the schema is applied with its repair, so nobody sees the bad values,
   * and its issues are returned. Resolves once it is committed.
   */
  async apply(update: Uint8Array, origin: unknown): Promise<Applied> {
    const check = checkUpdate(this.definition, this.doc, update);
    if (check.ok) {
      Y.applyUpdate(this.doc, update, origin);
      await this.committed();
      return { issues: [], repair: null };
    }
    Y.applyUpdate(this.doc, Y.mergeUpdates([update, check.repair]), origin);
    await this.committed();
    return { issues: check.issues, repair: check.repair };
  }

  /** Resolves once every change made to the doc so far is committed. */
  async committed(): Promise<void> {
    // A failed commit is tried again by the doc's writer; wait for the one that succeeds.
    for (;;) {
      try {
        await this.stored.flush();
        return;
      } catch (error) {
        if (this.#closed) throw error;
        if (error instanceof KvError && error.code === "DATABASE_CLOSED") throw error;
      }
    }
  }

  /** Takes an awareness update from `peer`, remembering the clients it speaks for. */
  applyAwareness(update: Uint8Array, peer: Peer): void {
    awarenessProtocol.applyAwarenessUpdate(this.awareness, update, peer);
  }

  join(peer: Peer): void {
    this.peers.add(peer);
    this.#controlled.set(peer, new Set());
  }

  leave(peer: Peer): void {
    this.peers.delete(peer);
    const clients = this.#controlled.get(peer);
    this.#controlled.delete(peer);
    if (clients && clients.size > 0)
      awarenessProtocol.removeAwarenessStates(this.awareness, [...clients], null);
  }

  /** The current awareness states, as a message for a peer that just joined. */
  awarenessMessage(): Uint8Array | null {
    const clients = [...this.awareness.getStates().keys()];
    if (clients.length === 0) return null;
    return awarenessMessage(awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.doc.off("update", this.#onUpdate);
    this.awareness.off("update", this.#onAwareness);
    this.awareness.destroy();
    this.mirror?.close();
    try {
      await this.stored.close();
    } finally {
      this.doc.destroy();
    }
  }

  readonly #onUpdate = (update: Uint8Array, origin: unknown): void => {
    const message = updateMessage(update);
    if (origin === PERSIST) {
      this.#broadcast(message, null);
      return;
    }
    this.committed().then(
      () => this.#broadcast(message, origin),
      () => {},
    );
  };

  readonly #onAwareness = (
    changes: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ): void => {
    const controlled = this.#controlled.get(origin as Peer);
    if (controlled) {
      for (const client of changes.added) controlled.add(client);
      for (const client of changes.removed) controlled.delete(client);
    }
    const clients = [...changes.added, ...changes.updated, ...changes.removed];
    const message = awarenessMessage(
      awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients),
    );
    this.#broadcast(message, null);
  };

  #broadcast(message: Uint8Array, except: unknown): void {
    for (const peer of this.peers) if (peer !== except) peer.send(message);
  }
}

/**
 * The open rooms of a server. A room is opened on first use and shared by every connection and
 * request of its workspace until it has been idle for `idleMs`.
 */
export class Rooms {
  readonly #root: Kv;
  readonly #definitions: ReadonlyMap<string, AnyWorkspace>;
  readonly #idleMs: number;
  readonly #mirrorDir: string | undefined;
  readonly #open = new Map<string, Promise<Room>>();
  readonly #users = new Map<string, { count: number; timer: NodeJS.Timeout | null }>();
  #closing: Promise<void> | null = null;

  constructor(root: Kv, definitions: readonly AnyWorkspace[], options: RoomOptions = {}) {
    this.#root = root;
    const byId = new Map<string, AnyWorkspace>();
    for (const definition of definitions) {
      if (byId.has(definition.id))
        throw new KvError(
          "INVALID_ARGUMENT",
          `two workspaces have the id ${JSON.stringify(definition.id)}`,
        );
      byId.set(definition.id, definition);
    }
    this.#definitions = byId;
    this.#idleMs = options.idleMs ?? 30_000;
    this.#mirrorDir = options.mirrorDir;
    if (this.#mirrorDir !== undefined) {
      mkdirSync(this.#mirrorDir, { recursive: true });
      // Mirrors follow their documents while the server runs: their rooms are held from the start.
      for (const id of byId.keys())
        this.acquire(id).catch((error: Error) =>
          warn(`cellar: opening workspace ${id} for its SQL mirror: ${error.message}`),
        );
    }
  }

  get definitions(): ReadonlyMap<string, AnyWorkspace> {
    return this.#definitions;
  }

  /** The definition of workspace `id`; `NOT_FOUND` for an id the server does not serve. */
  definition(id: string): AnyWorkspace {
    const definition = this.#definitions.get(id);
    if (!definition) throw new KvError("NOT_FOUND", `no workspace ${JSON.stringify(id)}`);
    return definition;
  }

  /** The room of workspace `id`, opened if need be; `release` it when done. */
  async acquire(id: string): Promise<Room> {
    if (this.#closing) throw new KvError("DATABASE_CLOSED", "the server is shutting down");
    const definition = this.definition(id);
    const users = this.#users.get(id) ?? { count: 0, timer: null };
    this.#users.set(id, users);
    users.count++;
    if (users.timer) clearTimeout(users.timer);
    users.timer = null;
    let room = this.#open.get(id);
    if (!room) {
      room = this.#openRoom(id, definition);
      this.#open.set(id, room);
    }
    try {
      return await room;
    } catch (error) {
      this.release(id);
      throw error;
    }
  }

  release(id: string): void {
    const users = this.#users.get(id);
    if (!users) return;
    users.count--;
    if (users.count > 0 || this.#closing) return;
    users.timer = setTimeout(() => {
      if (users.count > 0) return;
      this.#users.delete(id);
      const room = this.#open.get(id);
      this.#open.delete(id);
      room
        ?.then((open) => open.close())
        .catch((error: Error) => warn(`cellar: closing workspace ${id}: ${error.message}`));
    }, this.#idleMs);
    users.timer.unref();
  }

  /** Runs `fn` on workspace `id`'s room. */
  async use<T>(id: string, fn: (room: Room) => Promise<T> | T): Promise<T> {
    const room = await this.acquire(id);
    try {
      return await fn(room);
    } finally {
      this.release(id);
    }
  }

  /** Closes every room, writing what each holds. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const users of this.#users.values()) if (users.timer) clearTimeout(users.timer);
      const rooms = [...this.#open.values()];
      this.#open.clear();
      const results = await Promise.allSettled(rooms.map(async (room) => (await room).close()));
      const failed = results.find((result) => result.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    })();
    return this.#closing;
  }

  async #openRoom(id: string, definition: AnyWorkspace): Promise<Room> {
    const view = this.#root.namespace(workspaceNamespace(id));
    const stored = await openPersistedDoc(view, {
      onError: (error) => warn(`cellar: workspace ${id}: ${error.message}`),
    });
    const room = new Room(id, definition, stored);
    if (this.#mirrorDir !== undefined)
      room.mirror = await mirrorToSqlite(
        bindWorkspace(definition, stored.doc),
        join(this.#mirrorDir, `${id}.sqlite`),
      );
    return room;
  }
}

/** A y-websocket sync message carrying `update`. */
export function updateMessage(update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_SYNC);
  sync.writeUpdate(encoder, update);
  return encoding.toUint8Array(encoder);
}

function awarenessMessage(update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, MESSAGE_AWARENESS);
  encoding.writeVarUint8Array(encoder, update);
  return encoding.toUint8Array(encoder);
}
