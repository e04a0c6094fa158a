/**
 * The driver protocol's JSON (`wire/protocol.ts`) parsed into stored keys, encoded values and the
 * core's write requests, for the driver calls (`driver-calls.ts`).
 */
import { decodeKey } from "../../codec/key.js";
import { KvU64 } from "../../codec/u64.js";
import { decodeValue, type RawValue } from "../../codec/value.js";
import { assertVersionstamp } from "../../codec/versionstamp.js";
import type { Check, Enqueue, Mutation } from "../../contract/index.js";
import { writeInfoFrom } from "../../core/limits.js";
import {
  assertCounts,
  assertValueSize,
  type KvCore,
  namespaceOf,
  type WriteRequest,
} from "../../core/surface.js";
import { describe, KvError } from "../../errors.js";
import { unb64, valueFromWire } from "../../wire/protocol.js";

/**
 * Turns the driver protocol's JSON into stored keys, encoded values and the core's write
 * request. It only parses: scope, limits and history are the core's commit pipeline's to check.
 */
export class WireParser {
  /**
   * Milliseconds to add to the client's absolute times (expiry, delays, dedup windows) so they
   * mean the same on the server's clock: its clock minus the client's, as of the request.
   */
  #shift = 0;

  constructor(
    private readonly core: KvCore,
    private readonly trustClientClock = false,
  ) {}

  /** A stored key: its namespace, then a user key that decodes. */
  key(raw: unknown): Uint8Array {
    const key = unb64(raw, "key");
    decodeKey(key.subarray(namespaceOf(key).prefixLength));
    return key;
  }

  range(raw: { start?: unknown; end?: unknown }): { start: Uint8Array; end: Uint8Array } {
    return { start: unb64(raw.start, "start"), end: unb64(raw.end, "end") };
  }

  /** A queue's stored name: namespace prefix, then the encoded queue name. */
  queue(raw: unknown): Uint8Array {
    const queue = unb64(raw, "queue");
    const parts = decodeKey(queue.subarray(namespaceOf(queue).prefixLength));
    if (parts.length !== 1 || typeof parts[0] !== "string")
      throw new KvError("INVALID_REQUEST", "a queue is named by one string");
    return queue;
  }

  enqueue(raw: unknown): Enqueue {
    const e = (raw ?? {}) as Partial<
      Record<"q" | "id" | "v" | "at" | "p" | "b" | "u" | "d", unknown>
    >;
    if (typeof e.id !== "string" || !/^[0-9a-f-]{1,64}$/.test(e.id))
      throw new KvError("INVALID_REQUEST", "id must be a UUID");
    if (!Array.isArray(e.b)) throw new KvError("INVALID_REQUEST", "b must be an array of delays");
    if (!Array.isArray(e.u)) throw new KvError("INVALID_REQUEST", "u must be an array of keys");
    const dedup = e.d as { key?: unknown; until?: unknown } | undefined;
    if (dedup !== undefined && typeof dedup?.key !== "string")
      throw new KvError("INVALID_REQUEST", "d.key must be a string");
    return {
      queue: this.queue(e.q),
      id: e.id,
      value: this.value(e.v),
      availableAt: integer(e.at, "at") + this.#shift,
      priority: integer(e.p, "p"),
      backoffSchedule: e.b.map((ms) => integer(ms, "b[]")),
      keysIfUndelivered: e.u.map((k) => this.key(k)),
      ...(dedup && {
        dedup: { key: dedup.key as string, until: integer(dedup.until, "d.until") + this.#shift },
      }),
    };
  }

  value(raw: unknown): RawValue {
    const value = valueFromWire(raw);
    assertValueSize(this.core.limits, value);
    let decoded: unknown;
    try {
      decoded = decodeValue(value);
    } catch (error) {
      throw new KvError("INVALID_VALUE", `the value does not decode: ${(error as Error).message}`);
    }
    // JSON text is stored as this process writes it: no duplicate keys or other text that SQL
    // engines read otherwise than JSON.parse does, so where filters agree on it.
    return value.encoding === "json" ? { encoding: "json", data: JSON.stringify(decoded) } : value;
  }

  write(raw: unknown): WriteRequest {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw))
      throw new KvError("INVALID_REQUEST", "a write is an object");
    const {
      checks = [],
      rc = [],
      mutations = [],
      enqueues = [],
    } = (raw ?? {}) as { checks?: unknown; rc?: unknown; mutations?: unknown; enqueues?: unknown };
    if (
      !Array.isArray(checks) ||
      !Array.isArray(rc) ||
      !Array.isArray(mutations) ||
      !Array.isArray(enqueues)
    ) {
      throw new KvError("INVALID_REQUEST", "a write has checks, rc, mutations and enqueues arrays");
    }
    // Counted before parsing, so an oversized write costs no decoding; the pipeline counts again.
    assertCounts(this.core.limits, checks.length + rc.length, mutations.length + enqueues.length);
    const claimed = (raw as { now?: unknown }).now;
    this.#shift =
      this.trustClientClock || !Number.isSafeInteger(claimed)
        ? 0
        : this.core.now() - (claimed as number);
    return {
      checks: checks.map((c: { k?: unknown; vs?: unknown }): Check => {
        assertVersionstamp(c?.vs);
        return { key: this.key(c.k), versionstamp: c.vs as string | null };
      }),
      ...(rc.length > 0 && {
        rangeChecks: rc.map((r: { s?: unknown; e?: unknown; n?: unknown }) => ({
          ...this.range({ start: r?.s, end: r?.e }),
          count: integer(r?.n, "rc[].n"),
        })),
      }),
      mutations: mutations.map((m) => this.mutation(m)),
      ...(enqueues.length > 0 && { enqueues: enqueues.map((e) => this.enqueue(e)) }),
    };
  }

  mutation(raw: unknown): Mutation {
    const m = (raw ?? {}) as {
      t?: unknown;
      k?: unknown;
      v?: unknown;
      o?: unknown;
      n?: unknown;
      x?: unknown;
      i?: unknown;
    };
    const key = this.key(m.k);
    const info = writeInfoFrom((m.i ?? {}) as Record<string, unknown>);
    const base = { key, ...(info && { info }) };
    if (m.x != null && !Number.isSafeInteger(m.x))
      throw new KvError("INVALID_REQUEST", "x must be an integer or null");
    const expiresAt = m.x == null ? null : (m.x as number) + this.#shift;
    switch (m.t) {
      case "delete":
        return { ...base, type: "delete" };
      case "sum":
      case "min":
      case "max": {
        if (typeof m.n === "number") return { ...base, type: m.t, operand: m.n, expiresAt };
        if (typeof m.o !== "string" || !/^\d{1,20}$/.test(m.o))
          throw new KvError("INVALID_MUTATION", "o must be a decimal u64, or n a number");
        return { ...base, type: m.t, operand: new KvU64(BigInt(m.o)).value, expiresAt };
      }
      case "set":
      case "append":
      case "prepend": {
        const value = this.value(m.v);
        if (m.t !== "set" && !Array.isArray(decodeValue(value)))
          throw new KvError("INVALID_MUTATION", `'${m.t}' takes an array`);
        return {
          ...base,
          type: m.t,
          value,
          expiresAt,
          ...(m.t === "set" &&
            (raw as { sfx?: unknown }).sfx === true && { versionstampSuffix: true }),
        };
      }
      default:
        throw new KvError("INVALID_MUTATION", `unknown mutation type ${describe(m.t)}`);
    }
  }
}

function integer(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value))
    throw new KvError("INVALID_REQUEST", `${what} must be an integer`);
  return value as number;
}
