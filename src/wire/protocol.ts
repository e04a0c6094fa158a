/**
 * The driver protocol: the driver contract (`driver/contract.ts`) as JSON, spoken between the
 * remote driver and the server's `/api/driver/*` routes. Bytes travel as base64url; a JSON value
 * travels as its text. Requests carry the client's clock as `now`, but a server applies its own
 * unless it was started with `trustClientClock` (tests that move time by hand).
 */

import { fromBase64Url, toBase64Url } from "../codec/bytes.js";
import type { RawValue, ValueEncoding } from "../codec/value.js";
import { filterToWhere } from "../contract/filter.js";
import type {
  ChangeEvent,
  ChangePage,
  ChangeType,
  Check,
  Enqueue,
  EntryMeta,
  Filter,
  KeyChange,
  Mutation,
  RangeCheck,
  RawEntry,
  RawRevision,
  ReadRange,
  WriteInfo,
} from "../contract/index.js";
import { fail } from "../errors.js";
import { whereToJson } from "./json.js";

export const PROTOCOL_VERSION = 1;

/**
 * The driver protocol's calls: each is `POST /api/driver/<op>` with a JSON object body (`info`
 * is `GET /api/driver/info`), or a call frame on the driver socket (`driver-socket.ts`).
 */
export const DRIVER_OPS = [
  "info",
  "read",
  "count",
  "write",
  "history",
  "queues",
  "queue",
  "sweep",
  "purge",
  "changes",
  "indexes",
] as const;
export type DriverOp = (typeof DRIVER_OPS)[number];

export interface WireValue {
  readonly e: ValueEncoding;
  readonly d: string;
}
export interface WireRange {
  readonly start: string;
  readonly end: string;
  readonly limit: number;
  readonly reverse: boolean;
  /** A where filter (see `whereOfFilter`), compiled again by the server. */
  readonly where?: unknown;
}
export interface WireEntry {
  readonly k: string;
  readonly v: WireValue;
  readonly vs: string;
  readonly x: number | null;
  readonly m?: EntryMeta;
}
export interface WireMutation {
  readonly t: Mutation["type"];
  readonly k: string;
  readonly v?: WireValue;
  /** Operand of sum/min/max on a `KvU64`, decimal. */
  readonly o?: string;
  /** Operand of sum/min/max on a plain number. */
  readonly n?: number;
  readonly x?: number | null;
  readonly i?: WriteInfo;
  /** A set whose key gets the commit's versionstamp appended. */
  readonly sfx?: true;
}
export interface WireWrite {
  readonly checks: readonly { readonly k: string; readonly vs: string | null }[];
  /** Range checks: start, end, how many live entries. */
  readonly rc?: readonly { readonly s: string; readonly e: string; readonly n: number }[];
  readonly mutations: readonly WireMutation[];
  readonly enqueues?: readonly WireEnqueue[];
  /** The client's clock; used only by servers that trust client clocks (see `trustClientClock`). */
  readonly now?: number;
}
export type WireWriteResult =
  | { readonly vs: string; readonly enqueued?: readonly { id: string; deduplicated: boolean }[] }
  | { readonly failed: true }
  | { readonly error: { code: string; message: string } };
export interface WireRevision extends Omit<RawRevision, "value"> {
  readonly value?: WireValue;
}
export interface WireKeyChange {
  readonly k: string;
  readonly t: ChangeType;
  readonly e: WireEntry | null;
  readonly p: WireEntry | null;
}
export interface WireChange {
  readonly vs: string;
  readonly keys: readonly string[];
  readonly entries?: readonly WireKeyChange[];
}
export interface WireChangePage {
  readonly changes: readonly WireChange[];
  readonly truncated: boolean;
  readonly head: string;
  readonly oldest: string;
}

/** What the server tells a remote client about itself and the client's scope. */
export interface ServerInfo {
  readonly protocol: number;
  /** The namespace this client's requests use. */
  readonly namespace: string;
  /** Whether the client may also use other namespaces (its token allows several). */
  readonly otherNamespaces: boolean;
  readonly access: "read" | "write" | "admin";
  readonly limits: {
    readonly maxKeySize: number;
    readonly maxValueSize: number;
    readonly maxChecks: number;
    readonly maxMutations: number;
    readonly maxReadKeys: number;
  };
  /**
   * The driver socket (`wire/driver-socket.ts`), when the server has one: its path, and the
   * largest frame it takes (a call too large for it goes over HTTP).
   */
  readonly socket?: { readonly path: string; readonly maxFrame: number };
}

export const b64 = toBase64Url;

/** Bytes from unpadded base64url; `INVALID_REQUEST` for anything else. */
export function unb64(text: unknown, what = "bytes"): Uint8Array {
  const bytes = typeof text === "string" && /^[A-Za-z0-9_-]*$/.test(text) && fromBase64Url(text);
  if (!bytes) fail("INVALID_REQUEST", `${what} must be base64url`);
  return bytes;
}

export const valueToWire = (value: RawValue): WireValue =>
  value.encoding === "json"
    ? { e: "json", d: value.data }
    : { e: value.encoding, d: b64(value.data) };

export function valueFromWire(wire: unknown): RawValue {
  const { e, d } = (wire ?? {}) as { e?: unknown; d?: unknown };
  if (typeof d !== "string") fail("INVALID_REQUEST", "a wire value needs a string d");
  if (e === "json") return { encoding: "json", data: d };
  if (e === "v8" || e === "bytes" || e === "u64") return { encoding: e, data: unb64(d, "value") };
  fail("INVALID_REQUEST", `unknown value encoding ${JSON.stringify(e)}`);
}

export const rangeToWire = (range: ReadRange): WireRange => ({
  start: b64(range.start),
  end: b64(range.end),
  limit: range.limit,
  reverse: range.reverse,
  ...(range.where && { where: whereOfFilter(range.where) }),
});

/** A compiled filter as the driver protocol sends it: the user's language, in JSON. */
export const whereOfFilter = (filter: Filter): unknown => whereToJson(filterToWhere(filter));

export const entryToWire = (entry: RawEntry): WireEntry => ({
  k: b64(entry.key),
  v: valueToWire(entry.value),
  vs: entry.versionstamp,
  x: entry.expiresAt,
  ...(entry.meta && { m: entry.meta }),
});

export const entryFromWire = (wire: WireEntry): RawEntry => ({
  key: unb64(wire.k),
  value: valueFromWire(wire.v),
  versionstamp: wire.vs,
  expiresAt: wire.x,
  ...(wire.m && { meta: wire.m }),
});

export function mutationToWire(m: Mutation): WireMutation {
  const base = { t: m.type, k: b64(m.key), ...(m.info && { i: m.info }) };
  switch (m.type) {
    case "delete":
      return base;
    case "sum":
    case "min":
    case "max":
      return typeof m.operand === "number"
        ? { ...base, n: m.operand, x: m.expiresAt }
        : { ...base, o: m.operand.toString(), x: m.expiresAt };
    default:
      return {
        ...base,
        v: valueToWire(m.value),
        x: m.expiresAt,
        ...(m.type === "set" && m.versionstampSuffix && { sfx: true as const }),
      };
  }
}

export const checkToWire = (check: Check) => ({ k: b64(check.key), vs: check.versionstamp });

export const rangeCheckToWire = (check: RangeCheck) => ({
  s: b64(check.start),
  e: b64(check.end),
  n: check.count,
});

export const revisionFromWire = ({ value, ...rest }: WireRevision): RawRevision => ({
  ...rest,
  ...(value && { value: valueFromWire(value) }),
});

export const revisionToWire = ({ value, ...rest }: RawRevision): WireRevision => ({
  ...rest,
  ...(value && { value: valueToWire(value) }),
});

export const changeToWire = (change: ChangeEvent): WireChange => ({
  vs: change.versionstamp,
  keys: change.keys.map(b64),
  ...(change.entries && {
    entries: change.entries.map((c) => ({
      k: b64(c.key),
      t: c.type,
      e: c.entry && entryToWire(c.entry),
      p: c.previous && entryToWire(c.previous),
    })),
  }),
});

export const changeFromWire = (wire: WireChange): ChangeEvent => ({
  versionstamp: wire.vs,
  keys: wire.keys.map((k) => unb64(k)),
  ...(wire.entries && {
    entries: wire.entries.map(
      (c): KeyChange => ({
        key: unb64(c.k),
        type: c.t,
        entry: c.e && entryFromWire(c.e),
        previous: c.p && entryFromWire(c.p),
      }),
    ),
  }),
});

export const changePageFromWire = (wire: WireChangePage): ChangePage => ({
  changes: wire.changes.map(changeFromWire),
  truncated: wire.truncated,
  head: wire.head,
  oldest: wire.oldest,
});

export interface WireEnqueue {
  readonly q: string;
  readonly id: string;
  readonly v: WireValue;
  readonly at: number;
  readonly p: number;
  readonly b: readonly number[];
  readonly u: readonly string[];
  readonly d?: { readonly key: string; readonly until: number };
}

export const enqueueToWire = (e: Enqueue): WireEnqueue => ({
  q: b64(e.queue),
  id: e.id,
  v: valueToWire(e.value),
  at: e.availableAt,
  p: e.priority,
  b: e.backoffSchedule,
  u: e.keysIfUndelivered.map(b64),
  ...(e.dedup && { d: e.dedup }),
});

/** A leased or dead message with its value in wire form. */
export type WireMessage<M extends { value: RawValue }> = Omit<M, "value"> & {
  readonly value: WireValue;
};

export const messageToWire = <M extends { value: RawValue }>(m: M): WireMessage<M> => ({
  ...m,
  value: valueToWire(m.value),
});

export const messageFromWire = <M extends { value: RawValue }>(m: WireMessage<M>): M =>
  ({ ...m, value: valueFromWire(m.value) }) as unknown as M;
