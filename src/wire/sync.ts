/**
 * The sync protocol: JSON text messages over one WebSocket (`GET /api/sync`), between a client
 * store and the server. Keys are JSON keys (`keyToJson`), values tagged JSON (`valueToJson`),
 * so every value type round-trips.
 *
 * Client → server, in order: one `hello`, then `write`s, each numbered by the client in the
 * order it made them. Server → client: `welcome`; for a client with no resume point (or one the
 * change log no longer reaches), `snapshot` pages closed by `snapshot-end`; then `changes` (the
 * commits to replicated keys, in commit order, each once), `progress` (every change up to a
 * versionstamp was sent), and one answer per write — `ack`, `conflict` or `refused` — in the
 * order the writes came. A malformed message, or one out of turn, closes the socket with 4400
 * and a reason; it harms no other connection.
 */
import type { KvKey } from "../codec/key.js";
import { assertVersionstamp } from "../codec/versionstamp.js";
import { describe, fail, KvError, type KvErrorCode } from "../errors.js";
import { keyFromJson, keyToJson, valueFromJson, valueToJson } from "./json.js";

/** The socket's path on a Cellar server. */
export const SYNC_PATH = "/api/sync";

const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** One mutation of a client write. */
export type SyncMutation =
  | {
      readonly type: "set";
      readonly key: KvKey;
      readonly value: unknown;
      readonly expireIn?: number;
    }
  | { readonly type: "delete"; readonly key: KvKey };

export interface SyncHello {
  readonly type: "hello";
  /** The client store's id: stable across restarts, so a resent write is applied once. */
  readonly client: string;
  /** Resume after this versionstamp; absent: send a snapshot first. */
  readonly since?: string;
  readonly prefixes: readonly KvKey[];
}

export interface SyncWrite {
  readonly type: "write";
  /** Increasing per client: the server applies a write once, and none older than one it applied. */
  readonly id: number;
  /** The namespace the client believes it writes to; refused if it is not the connection's. */
  readonly namespace?: string;
  readonly mutations: readonly SyncMutation[];
  readonly checks: readonly { readonly key: KvKey; readonly versionstamp: string | null }[];
  /** Per mutation: the versionstamp the client's replica had for its key (`null`: none). */
  readonly base: readonly (string | null)[];
}

export type ClientMessage = SyncHello | SyncWrite;

/** An entry as the server sends it: `value` `null` and `deleted` for a deletion. */
/** An entry's metadata as sent: `KvEntryMetadata`'s fields. */
export interface SyncMetadata {
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly expiresAt: number | null;
  readonly tags: readonly string[];
  readonly modifiedBy: string | null;
  readonly comment: string | null;
  readonly dataHash: string;
}

export interface SyncEntry {
  readonly key: KvKey;
  readonly value: unknown;
  readonly versionstamp: string;
  readonly deleted?: boolean;
  readonly metadata?: SyncMetadata;
}

export interface SyncErrorBody {
  readonly code: KvErrorCode;
  readonly message: string;
  readonly issues?: readonly {
    readonly path: readonly (string | number)[];
    readonly message: string;
  }[];
}

export type ServerMessage =
  | {
      readonly type: "welcome";
      readonly namespace: string;
      /** A snapshot follows (the client reloads); otherwise the changes after its resume point. */
      readonly snapshot: boolean;
      /** The database's latest commit when the feed started: caught up once this far. */
      readonly head: string;
      /** The largest message the server takes, in bytes: a larger write cannot be sent. */
      readonly maxMessage?: number;
    }
  | { readonly type: "snapshot"; readonly entries: readonly SyncEntry[] }
  | { readonly type: "snapshot-end"; readonly versionstamp: string }
  | {
      readonly type: "changes";
      readonly versionstamp: string;
      readonly entries: readonly SyncEntry[];
    }
  | { readonly type: "progress"; readonly versionstamp: string }
  | {
      readonly type: "ack";
      readonly id: number;
      readonly versionstamp: string;
      /** What the write left, per key it wrote (the merged value under a merge policy). */
      readonly entries: readonly SyncEntry[];
      /** The write had been applied before (a resend after a lost answer). */
      readonly duplicate?: boolean;
    }
  | {
      readonly type: "conflict";
      readonly id: number;
      /** The server's entries for the conflicting keys (deleted: absent), which stay. */
      readonly entries: readonly SyncEntry[];
      /** Indexes into the write's mutations that conflicted. */
      readonly mutations: readonly number[];
    }
  | { readonly type: "refused"; readonly id: number; readonly error: SyncErrorBody }
  | { readonly type: "error"; readonly error: SyncErrorBody };

// ---- encoding ----

const mutationJson = (m: SyncMutation) =>
  m.type === "set"
    ? {
        type: "set",
        key: keyToJson(m.key),
        value: valueToJson(m.value),
        ...(m.expireIn !== undefined && { expireIn: m.expireIn }),
      }
    : { type: "delete", key: keyToJson(m.key) };

const entryJson = (e: SyncEntry) => ({
  key: keyToJson(e.key),
  value: e.deleted ? null : valueToJson(e.value),
  versionstamp: e.versionstamp,
  ...(e.deleted && { deleted: true }),
  ...(e.metadata && { metadata: e.metadata }),
});

/** One entry's text inside a `snapshot` message (see {@link snapshotText}). */
export const entryText = (entry: SyncEntry): string => JSON.stringify(entryJson(entry));

/** The text of a `snapshot` message of entries already in text (so pages can be cut by size). */
export const snapshotText = (entries: readonly string[]): string =>
  `{"type":"snapshot","entries":[${entries.join(",")}]}`;

/** The text of a client message. */
export function encodeClientMessage(message: ClientMessage): string {
  if (message.type === "hello")
    return JSON.stringify({ ...message, prefixes: message.prefixes.map(keyToJson) });
  return JSON.stringify({
    ...message,
    mutations: message.mutations.map(mutationJson),
    checks: message.checks.map((c) => ({ key: keyToJson(c.key), versionstamp: c.versionstamp })),
  });
}

/** The text of a server message. */
export function encodeServerMessage(message: ServerMessage): string {
  if ("entries" in message)
    return JSON.stringify({ ...message, entries: message.entries.map(entryJson) });
  return JSON.stringify(message);
}

// ---- decoding: every field checked, anything else refused with INVALID_REQUEST ----

const bad = (message: string): never => fail("INVALID_REQUEST", message);

function object(json: unknown, what: string): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    bad(`${what} must be a JSON object, got ${describe(json)}`);
  return json as Record<string, unknown>;
}

function array(json: unknown, what: string): unknown[] {
  if (!Array.isArray(json)) bad(`${what} must be an array, got ${describe(json)}`);
  return json as unknown[];
}

function versionstampOrNull(json: unknown, what: string): string | null {
  try {
    assertVersionstamp(json);
  } catch (error) {
    bad(`${what}: ${(error as Error).message}`);
  }
  return json as string | null;
}

function parseJson(text: unknown): unknown {
  if (typeof text !== "string") bad("sync messages are JSON text frames");
  try {
    return JSON.parse(text as string);
  } catch {
    return bad("a sync message is not valid JSON");
  }
}

/** Keeps a key or value error's own code (INVALID_KEY, INVALID_VALUE), naming where it was. */
function within<T>(what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof KvError) throw new KvError(error.code, `${what}: ${error.message}`);
    throw error;
  }
}

function parseMutation(json: unknown, i: number): SyncMutation {
  const m = object(json, `mutations[${i}]`);
  const key = within(`mutations[${i}].key`, () => keyFromJson(m.key));
  if (m.type === "delete") return { type: "delete", key };
  if (m.type !== "set")
    bad(`mutations[${i}].type must be "set" or "delete", got ${describe(m.type)}`);
  if (!("value" in m)) bad(`mutations[${i}] is a set without a value`);
  const value = within(`mutations[${i}].value`, () => valueFromJson(m.value));
  if (m.expireIn === undefined) return { type: "set", key, value };
  if (typeof m.expireIn !== "number" || !Number.isSafeInteger(m.expireIn) || m.expireIn <= 0)
    bad(`mutations[${i}].expireIn must be a positive integer of ms, got ${describe(m.expireIn)}`);
  return { type: "set", key, value, expireIn: m.expireIn as number };
}

/** Parses a client's message; throws `INVALID_REQUEST` (or the key's or value's own code). */
export function decodeClientMessage(text: unknown): ClientMessage {
  const m = object(parseJson(text), "a sync message");
  if (m.type === "hello") {
    if (typeof m.client !== "string" || !CLIENT_ID.test(m.client))
      bad(`hello.client must be 1 to 64 letters, digits, "-" or "_", got ${describe(m.client)}`);
    const prefixes = array(m.prefixes, "hello.prefixes").map((p, i) =>
      within(`hello.prefixes[${i}]`, () => keyFromJson(p)),
    );
    if (prefixes.length === 0 || prefixes.length > 100)
      bad(`hello.prefixes must hold 1 to 100 prefixes, got ${prefixes.length}`);
    const since = m.since === undefined ? undefined : versionstampOrNull(m.since, "hello.since");
    return {
      type: "hello",
      client: m.client as string,
      prefixes,
      ...(since !== undefined && since !== null && { since }),
    };
  }
  if (m.type === "write") {
    if (typeof m.id !== "number" || !Number.isSafeInteger(m.id) || m.id < 1)
      bad(`write.id must be a positive integer, got ${describe(m.id)}`);
    if (m.namespace !== undefined && typeof m.namespace !== "string")
      bad(`write.namespace must be a string, got ${describe(m.namespace)}`);
    const mutations = array(m.mutations, "write.mutations").map(parseMutation);
    if (mutations.length === 0) bad("write.mutations is empty");
    const checks = array(m.checks ?? [], "write.checks").map((json, i) => {
      const c = object(json, `checks[${i}]`);
      return {
        key: within(`checks[${i}].key`, () => keyFromJson(c.key)),
        versionstamp: versionstampOrNull(c.versionstamp, `checks[${i}].versionstamp`),
      };
    });
    const base = array(m.base, "write.base").map((b, i) => versionstampOrNull(b, `base[${i}]`));
    if (base.length !== mutations.length)
      bad(
        `write.base needs one versionstamp (or null) per mutation: ${mutations.length}, got ${base.length}`,
      );
    return {
      type: "write",
      id: m.id as number,
      ...(m.namespace !== undefined && { namespace: m.namespace as string }),
      mutations,
      checks,
      base,
    };
  }
  return bad(`a sync message's type is "hello" or "write", got ${describe(m.type)}`);
}

function parseEntry(json: unknown): SyncEntry {
  const e = object(json, "an entry");
  const key = keyFromJson(e.key);
  const versionstamp = versionstampOrNull(e.versionstamp, "entry.versionstamp");
  if (versionstamp === null) bad("an entry's versionstamp is missing");
  const metadata =
    typeof e.metadata === "object" && e.metadata !== null
      ? (e.metadata as SyncMetadata)
      : undefined;
  if (e.deleted === true) return { key, value: null, versionstamp: versionstamp!, deleted: true };
  return {
    key,
    value: valueFromJson(e.value),
    versionstamp: versionstamp!,
    ...(metadata && { metadata }),
  };
}

/** Parses a server's message (the client's side); throws `INVALID_REQUEST` if malformed. */
export function decodeServerMessage(text: unknown): ServerMessage {
  const m = object(parseJson(text), "a sync message");
  const entries = () => array(m.entries, `${String(m.type)}.entries`).map(parseEntry);
  const stamp = (field = "versionstamp") => {
    const value = versionstampOrNull(m[field], `${String(m.type)}.${field}`);
    return value === null ? bad(`${String(m.type)}.${field} is missing`) : value;
  };
  switch (m.type) {
    case "welcome":
      return {
        type: "welcome",
        namespace: String(m.namespace),
        snapshot: m.snapshot === true,
        head: stamp("head"),
        ...(typeof m.maxMessage === "number" && { maxMessage: m.maxMessage }),
      };
    case "snapshot":
      return { type: "snapshot", entries: entries() };
    case "snapshot-end":
      return { type: "snapshot-end", versionstamp: stamp() };
    case "changes":
      return { type: "changes", versionstamp: stamp(), entries: entries() };
    case "progress":
      return { type: "progress", versionstamp: stamp() };
    case "ack":
      return {
        type: "ack",
        id: Number(m.id),
        versionstamp: stamp(),
        entries: entries(),
        ...(m.duplicate === true && { duplicate: true }),
      };
    case "conflict":
      return {
        type: "conflict",
        id: Number(m.id),
        entries: entries(),
        mutations: array(m.mutations, "conflict.mutations").map(Number),
      };
    case "refused":
      return { type: "refused", id: Number(m.id), error: errorBody(m.error) };
    case "error":
      return { type: "error", error: errorBody(m.error) };
    default:
      return bad(`unknown sync message type ${describe(m.type)}`);
  }
}

function errorBody(json: unknown): SyncErrorBody {
  const e = object(json, "an error");
  return {
    code: String(e.code) as KvErrorCode,
    message: String(e.message),
    ...(Array.isArray(e.issues) && { issues: e.issues as SyncErrorBody["issues"] }),
  };
}
