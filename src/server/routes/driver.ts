/**
 * The driver protocol's server side (`wire/protocol.ts`): what the remote driver calls. Keys
 * arrive as stored bytes, so every key and range is checked against the namespaces the request
 * may use before it reaches the driver, and every value is decoded once to refuse garbage.
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { decodeKey } from "../../codec/key.js";
import { KvU64 } from "../../codec/u64.js";
import { decodeValue, rawSize } from "../../codec/value.js";
import { assertVersionstamp, NEWEST_VERSIONSTAMP } from "../../codec/versionstamp.js";
import type { AtomicWrite, Check, Enqueue, Mutation, Settlement } from "../../contract/index.js";
import type { Database } from "../../core/database.js";
import { writeInfoFrom } from "../../core/limits.js";
import { bareMessage, describe, KvError } from "../../errors.js";
import { type RequestScope, requireAccess, type ServerEnv } from "../../http/auth.js";
import type { StreamRegistry } from "../../http/streams.js";
import {
  b64,
  changeToWire,
  entryToWire,
  messageToWire,
  PROTOCOL_VERSION,
  revisionToWire,
  type ServerInfo,
  unb64,
  valueFromWire,
  type WireWriteResult,
} from "../../wire/protocol.js";

const MAX_WRITES_PER_REQUEST = 1000;
const MAX_RANGES_PER_REQUEST = 1000;

/** The namespace a stored key belongs to, and where the user's key starts. */
function namespaceOf(key: Uint8Array): { name: string; prefixLength: number } {
  if (key[0] !== 0x02) throw new KvError("INVALID_KEY", "a stored key starts with its namespace");
  let i = 1;
  while (i < key.length && !(key[i] === 0 && key[i + 1] !== 0xff)) i += key[i] === 0 ? 2 : 1;
  if (i >= key.length) throw new KvError("INVALID_KEY", "a stored key starts with its namespace");
  const name = decodeKey(key.subarray(0, i + 1))[0] as string;
  return { name, prefixLength: i + 1 };
}

class Guard {
  /**
   * Milliseconds to add to the client's absolute times (expiry, delays, dedup windows) so they
   * mean the same on the server's clock: its clock minus the client's, as of the request.
   */
  #shift = 0;

  constructor(
    private readonly db: Database,
    private readonly may: (namespace: string) => boolean,
    private readonly trustClientClock = false,
  ) {}

  key(raw: unknown): Uint8Array {
    const key = unb64(raw, "key");
    const { name, prefixLength } = namespaceOf(key);
    if (!this.may(name))
      throw new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(name)}`);
    const size = key.length - prefixLength;
    if (size > this.db.limits.maxKeySize) {
      throw new KvError(
        "KEY_TOO_LARGE",
        `key is ${size} bytes encoded; the limit is ${this.db.limits.maxKeySize}`,
      );
    }
    decodeKey(key.subarray(prefixLength));
    return key;
  }

  range(raw: { start?: unknown; end?: unknown }): { start: Uint8Array; end: Uint8Array } {
    const start = unb64(raw.start, "start");
    const end = unb64(raw.end, "end");
    const { name, prefixLength } = namespaceOf(start);
    if (!this.may(name))
      throw new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(name)}`);
    const ceiling = Buffer.concat([start.subarray(0, prefixLength), Buffer.of(0xff)]);
    if (Buffer.compare(end, ceiling) > 0)
      throw new KvError("FORBIDDEN", "a range may not leave its namespace");
    return { start, end };
  }

  /** A queue's stored name: namespace prefix, then the encoded queue name. */
  queue(raw: unknown): Uint8Array {
    const queue = unb64(raw, "queue");
    const { name, prefixLength } = namespaceOf(queue);
    if (!this.may(name))
      throw new KvError("FORBIDDEN", `this token may not use namespace ${JSON.stringify(name)}`);
    const parts = decodeKey(queue.subarray(prefixLength));
    if (parts.length !== 1 || typeof parts[0] !== "string")
      throw new KvError("INVALID_REQUEST", "a queue is named by one string");
    return queue;
  }

  enqueue(raw: unknown): Enqueue {
    const e = (raw ?? {}) as Partial<
      Record<"q" | "id" | "v" | "at" | "p" | "b" | "u" | "d", unknown>
    >;
    const int = (value: unknown, what: string) => {
      if (!Number.isSafeInteger(value))
        throw new KvError("INVALID_REQUEST", `${what} must be an integer`);
      return value as number;
    };
    if (typeof e.id !== "string" || !/^[0-9a-f-]{1,64}$/.test(e.id))
      throw new KvError("INVALID_REQUEST", "id must be a UUID");
    if (!Array.isArray(e.b) || e.b.length > 20)
      throw new KvError("INVALID_REQUEST", "b must be an array of at most 20 delays");
    if (!Array.isArray(e.u) || e.u.length > 100)
      throw new KvError("INVALID_REQUEST", "u must be an array of at most 100 keys");
    const dedup = e.d as { key?: unknown; until?: unknown } | undefined;
    if (dedup !== undefined && (typeof dedup?.key !== "string" || dedup.key.length > 256)) {
      throw new KvError("INVALID_REQUEST", "d.key must be a string of at most 256 characters");
    }
    return {
      queue: this.queue(e.q),
      id: e.id,
      value: this.value(e.v),
      availableAt: int(e.at, "at") + this.#shift,
      priority: int(e.p, "p"),
      backoffSchedule: e.b.map((ms) => int(ms, "b[]")),
      keysIfUndelivered: e.u.map((k) => this.key(k)),
      ...(dedup && {
        dedup: { key: dedup.key as string, until: int(dedup.until, "d.until") + this.#shift },
      }),
    };
  }

  value(raw: unknown) {
    const value = valueFromWire(raw);
    const size = rawSize(value);
    if (size > this.db.limits.maxValueSize) {
      throw new KvError(
        "VALUE_TOO_LARGE",
        `value is ${size} bytes encoded; the limit is ${this.db.limits.maxValueSize}`,
      );
    }
    try {
      decodeValue(value);
      return value;
    } catch (error) {
      throw new KvError("INVALID_VALUE", `the value does not decode: ${(error as Error).message}`);
    }
  }

  write(raw: unknown): Omit<AtomicWrite, "now"> {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw))
      throw new KvError("INVALID_REQUEST", "a write is an object");
    const {
      checks = [],
      mutations = [],
      enqueues = [],
    } = (raw ?? {}) as { checks?: unknown; mutations?: unknown; enqueues?: unknown };
    if (!Array.isArray(checks) || !Array.isArray(mutations) || !Array.isArray(enqueues)) {
      throw new KvError("INVALID_REQUEST", "a write has checks, mutations and enqueues arrays");
    }
    if (enqueues.length > this.db.limits.maxMutations) {
      throw new KvError("TOO_MANY_MUTATIONS", `at most ${this.db.limits.maxMutations} enqueues`);
    }
    if (checks.length > this.db.limits.maxChecks)
      throw new KvError("TOO_MANY_CHECKS", `at most ${this.db.limits.maxChecks} checks`);
    if (mutations.length > this.db.limits.maxMutations) {
      throw new KvError("TOO_MANY_MUTATIONS", `at most ${this.db.limits.maxMutations} mutations`);
    }
    const claimed = (raw as { now?: unknown }).now;
    this.#shift =
      this.trustClientClock || !Number.isSafeInteger(claimed)
        ? 0
        : this.db.now() - (claimed as number);
    return {
      checks: checks.map((c: { k?: unknown; vs?: unknown }): Check => {
        assertVersionstamp(c?.vs);
        return { key: this.key(c.k), versionstamp: c.vs as string | null };
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
      x?: unknown;
      i?: unknown;
    };
    const key = this.key(m.k);
    const info = writeInfoFrom((m.i ?? {}) as Record<string, unknown>);
    const base = {
      key,
      keepValue: this.db.keepsValues(key.subarray(namespaceOf(key).prefixLength)),
      ...(info && { info }),
    };
    if (m.x != null && !Number.isSafeInteger(m.x))
      throw new KvError("INVALID_REQUEST", "x must be an integer or null");
    const expiresAt = m.x == null ? null : (m.x as number) + this.#shift;
    switch (m.t) {
      case "delete":
        return { ...base, type: "delete" };
      case "sum":
      case "min":
      case "max": {
        if (typeof m.o !== "string" || !/^\d{1,20}$/.test(m.o))
          throw new KvError("INVALID_MUTATION", "o must be a decimal u64");
        return {
          ...base,
          type: m.t,
          operand: new KvU64(BigInt(m.o)).value,
          expiresAt: expiresAt as number | null,
        };
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
          expiresAt: expiresAt as number | null,
          ...(m.t === "set" &&
            (raw as { sfx?: unknown }).sfx === true && { versionstampSuffix: true }),
        };
      }
      default:
        throw new KvError("INVALID_MUTATION", `unknown mutation type ${describe(m.t)}`);
    }
  }
}

/** Which namespaces a driver-level request may name: all its token allows, or only its own. */
function mayUse(scope: RequestScope, others: boolean): (namespace: string) => boolean {
  return others ? scope.allows : (ns) => ns === scope.namespace;
}

async function readJson(c: {
  req: { json(): Promise<unknown> };
}): Promise<Record<string, unknown>> {
  const body = await c.req.json();
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new KvError("INVALID_REQUEST", "the body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

export function driverRoutes(
  app: Hono<ServerEnv>,
  db: Database,
  options: {
    otherNamespaces: boolean;
    streams: StreamRegistry;
    pingInterval: number;
    trustClientClock: boolean;
  },
): void {
  const guard = (scope: RequestScope) =>
    new Guard(db, mayUse(scope, options.otherNamespaces), options.trustClientClock);
  const nowOf = (claimed: unknown) =>
    options.trustClientClock && Number.isSafeInteger(claimed) ? (claimed as number) : db.now();

  app.get("/api/driver/info", (c) => {
    const scope = c.get("scope");
    const info: ServerInfo = {
      protocol: PROTOCOL_VERSION,
      namespace: scope.namespace,
      otherNamespaces:
        options.otherNamespaces &&
        (scope.grant === null ||
          scope.grant.namespaces.length > 1 ||
          scope.grant.namespaces.includes("*")),
      access: scope.access,
      limits: db.limits,
    };
    return c.json(info);
  });

  app.post("/api/driver/read", async (c) => {
    requireAccess(c, "read");
    const body = await readJson(c);
    const ranges = body.ranges;
    if (!Array.isArray(ranges) || ranges.length > MAX_RANGES_PER_REQUEST) {
      throw new KvError(
        "INVALID_REQUEST",
        `ranges must be an array of at most ${MAX_RANGES_PER_REQUEST}`,
      );
    }
    const g = guard(c.get("scope"));
    const parsed = ranges.map((r: { limit?: unknown; reverse?: unknown }) => {
      if (
        !Number.isSafeInteger(r?.limit) ||
        (r.limit as number) < 0 ||
        (r.limit as number) > 1000
      ) {
        throw new KvError("INVALID_REQUEST", "a range limit is an integer in [0, 1000]");
      }
      return {
        ...g.range(r as { start: unknown; end: unknown }),
        limit: r.limit as number,
        reverse: r.reverse === true,
      };
    });
    const results = await db.driver.snapshotRead(parsed, {
      now: nowOf(body.now),
      metadata: body.metadata === true,
    });
    return c.json({ results: results.map((entries) => entries.map(entryToWire)) });
  });

  app.post("/api/driver/count", async (c) => {
    requireAccess(c, "read");
    const body = await readJson(c);
    const range = guard(c.get("scope")).range(body);
    return c.json({ count: await db.driver.count(range, { now: nowOf(body.now) }) });
  });

  app.post("/api/driver/write", async (c) => {
    requireAccess(c, "write");
    const body = await readJson(c);
    if (!Array.isArray(body.writes) || body.writes.length > MAX_WRITES_PER_REQUEST) {
      throw new KvError(
        "INVALID_REQUEST",
        `writes must be an array of at most ${MAX_WRITES_PER_REQUEST}`,
      );
    }
    const g = guard(c.get("scope"));
    const results = await Promise.all(
      body.writes.map(async (raw): Promise<WireWriteResult> => {
        try {
          const result = await db.driver.atomicWrite({
            ...g.write(raw),
            now: nowOf((raw as { now?: unknown })?.now),
          });
          if (!result) return { failed: true };
          return { vs: result.versionstamp, ...(result.enqueued && { enqueued: result.enqueued }) };
        } catch (error) {
          if (!(error instanceof KvError)) throw error;
          return {
            error: { code: error.code, message: bareMessage(error) },
          };
        }
      }),
    );
    return c.json({ results });
  });

  app.post("/api/driver/history", async (c) => {
    requireAccess(c, "read");
    const body = await readJson(c);
    const limit = body.limit;
    if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > 10_000) {
      throw new KvError("INVALID_REQUEST", "limit is an integer in [1, 10000]");
    }
    const key = guard(c.get("scope")).key(body.key);
    // Which keys keep values is this server's setting, not the client's.
    const withValues = db.keepsValues(key.subarray(namespaceOf(key).prefixLength));
    const revisions = await db.driver.history(key, {
      limit: limit as number,
      now: nowOf(body.now),
      withValues,
    });
    return c.json({ revisions: revisions.map(revisionToWire) });
  });

  app.post("/api/driver/queue", async (c) => {
    const body = await readJson(c);
    const g = guard(c.get("scope"));
    const queue = g.queue(body.queue);
    const now = nowOf(body.now);
    const ids =
      body.ids === null
        ? null
        : Array.isArray(body.ids) && body.ids.every((id) => typeof id === "string")
          ? (body.ids as string[])
          : undefined;
    const atLeast = (min: number) => (value: unknown, what: string) => {
      if (!Number.isSafeInteger(value) || (value as number) < min) {
        throw new KvError("INVALID_REQUEST", `${what} must be an integer of at least ${min}`);
      }
      return value as number;
    };
    const positive = atLeast(1);
    switch (body.op) {
      case "dequeue": {
        requireAccess(c, "write");
        const leased = await db.driver.dequeue(queue, {
          now,
          visibilityTimeout: positive(body.visibilityTimeout, "visibilityTimeout"),
          limit: Math.min(positive(body.limit, "limit"), 1000),
        });
        return c.json({ messages: leased.map(messageToWire) });
      }
      case "settle": {
        requireAccess(c, "write");
        if (typeof body.token !== "string")
          throw new KvError("INVALID_REQUEST", "token must be a string");
        const s = body.settlement as
          | { type?: unknown; delay?: unknown; error?: unknown; ms?: unknown }
          | undefined;
        const settlement: Settlement =
          s?.type === "ack"
            ? { type: "ack" }
            : s?.type === "extend"
              ? { type: "extend", ms: positive(s.ms, "ms") }
              : s?.type === "nack"
                ? {
                    type: "nack",
                    ...(s.delay !== undefined && { delay: atLeast(0)(s.delay, "delay") }),
                    ...(typeof s.error === "string" && { error: s.error.slice(0, 1000) }),
                  }
                : (() => {
                    throw new KvError("INVALID_REQUEST", "settlement.type is ack, nack or extend");
                  })();
        return c.json({ ok: await db.driver.settle(queue, body.token, settlement, now) });
      }
      case "stats":
        requireAccess(c, "read");
        return c.json(await db.driver.queueStats(queue, now));
      case "listDead": {
        requireAccess(c, "read");
        const dead = await db.driver.listDead(queue, {
          limit: Math.min(positive(body.limit, "limit"), 1000),
          ...(typeof body.after === "string" && { after: body.after }),
        });
        return c.json({ messages: dead.map(messageToWire) });
      }
      case "getDead": {
        requireAccess(c, "read");
        if (typeof body.id !== "string")
          throw new KvError("INVALID_REQUEST", "id must be a string");
        const dead = await db.driver.getDead(queue, body.id);
        return c.json({ message: dead && messageToWire(dead) });
      }
      case "requeueDead":
      case "deleteDead": {
        requireAccess(c, "write");
        if (ids === undefined)
          throw new KvError("INVALID_REQUEST", "ids must be an array of strings, or null for all");
        const count =
          body.op === "requeueDead"
            ? await db.driver.requeueDead(queue, ids, now)
            : await db.driver.deleteDead(queue, ids);
        return c.json({ count });
      }
      default:
        throw new KvError("INVALID_REQUEST", `unknown queue op ${describe(body.op)}`);
    }
  });

  app.post("/api/driver/sweep", async (c) => {
    requireAccess(c, "write");
    const body = await readJson(c);
    if (options.trustClientClock && Number.isSafeInteger(body.now)) {
      return c.json({ deleted: await db.driver.deleteExpired(body.now as number, 100_000) });
    }
    return c.json({ deleted: await db.sweep() });
  });

  const visibleChanges = async (scope: RequestScope, after: string, limit: number) => {
    const may = mayUse(scope, options.otherNamespaces);
    const page = await db.driver.readChanges(after, limit);
    const changes = page.changes
      .map((change) => ({
        ...change,
        keys: change.keys.filter((key) => may(namespaceOf(key).name)),
      }))
      .filter((change) => change.keys.length > 0);
    const last = page.changes.at(-1)?.versionstamp;
    return {
      changes,
      truncated: page.truncated,
      head: page.head,
      position: last ?? (page.changes.length === 0 ? page.head : after),
    };
  };

  app.post("/api/driver/changes", async (c) => {
    requireAccess(c, "read");
    const body = await readJson(c);
    assertVersionstamp(body.after);
    const limit = Number.isSafeInteger(body.limit) ? Math.min(body.limit as number, 1000) : 100;
    const page = await visibleChanges(
      c.get("scope"),
      (body.after as string | null) ?? NEWEST_VERSIONSTAMP,
      limit,
    );
    return c.json({
      changes: page.changes.map(changeToWire),
      truncated: page.truncated,
      head: page.head,
    });
  });

  /** Change events as SSE (`change`, id = versionstamp; `reset` when the log was pruned past `after`). */
  app.get("/api/driver/changes/stream", (c) => {
    requireAccess(c, "read");
    const scope = c.get("scope");
    const resume = c.req.query("after") ?? c.req.header("last-event-id");
    if (resume !== undefined) assertVersionstamp(resume);
    let stop = () => {};
    const release = options.streams.add(() => stop());
    return streamSSE(c, async (out) => {
      let after = resume ?? (await db.driver.readChanges(NEWEST_VERSIONSTAMP, 0)).head;
      let dirty = true;
      let wake: (() => void) | null = null;
      let ended = false;
      const end = () => {
        ended = true;
        wake?.();
      };
      stop = () => {
        end();
        out.abort();
      };
      const may = mayUse(scope, options.otherNamespaces);
      const unsubscribe = db.driver.onChange((change) => {
        for (const queue of change.queues ?? []) {
          if (may(namespaceOf(queue).name))
            void out.writeSSE({ event: "queue", data: b64(queue) }).catch(end);
        }
        if (change.keys.length === 0) return;
        dirty = true;
        wake?.();
      });
      const ping = setInterval(() => void out.write(": ping\n\n").catch(end), options.pingInterval);
      out.onAbort(end);
      try {
        await out.writeSSE({ event: "ready", id: after, data: JSON.stringify({ head: after }) });
        while (!ended) {
          if (!dirty) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = null;
            continue;
          }
          dirty = false;
          const page = await visibleChanges(scope, after, 100);
          if (page.truncated) {
            after = page.head;
            await out.writeSSE({
              event: "reset",
              id: after,
              data: JSON.stringify({ head: after }),
            });
            continue;
          }
          for (const change of page.changes) {
            await out.writeSSE({
              event: "change",
              id: change.versionstamp,
              data: JSON.stringify(changeToWire(change)),
            });
          }
          if (page.position > after) after = page.position;
          if (page.changes.length === 100) dirty = true;
        }
      } finally {
        clearInterval(ping);
        unsubscribe();
        release();
      }
    });
  });
}
