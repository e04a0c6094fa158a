/**
 * The driver protocol's server side (`wire/protocol.ts`): what the remote driver calls. Keys
 * arrive as stored bytes; this face parses them (every key must decode, every value too) and
 * hands them to the core's commit pipeline and read path with the request's scope, the
 * namespaces its token may use, where limits and namespaces are checked as for every face.
 */
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { decodeKey, encodeKey } from "../../codec/key.js";
import { KvU64 } from "../../codec/u64.js";
import { decodeValue, type RawValue } from "../../codec/value.js";
import { assertVersionstamp, NEWEST_VERSIONSTAMP } from "../../codec/versionstamp.js";
import type { Check, Enqueue, Filter, Mutation, Settlement } from "../../contract/index.js";
import { writeInfoFrom } from "../../core/limits.js";
import {
  assertCounts,
  assertNamespaceName,
  assertValueSize,
  type KvCore,
  MAX_QUEUE_PAGE,
  NamespaceScope,
  namespaceOf,
  namespaceView,
  type WriteRequest,
} from "../../core/surface.js";
import { compileWhere } from "../../core/where/compile.js";
import { bareMessage, describe, KvError } from "../../errors.js";
import { type RequestScope, requireAccess, type ServerEnv } from "../../http/auth.js";
import type { StreamRegistry } from "../../http/streams.js";
import { whereFromJson } from "../../wire/json.js";
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
import { runIndexCall } from "./index-calls.js";

const MAX_WRITES_PER_REQUEST = 1000;
const MAX_RANGES_PER_REQUEST = 1000;

/**
 * Turns the driver protocol's JSON into stored keys, encoded values and the core's write
 * request. It only parses: scope, limits and history are the core's commit pipeline's to check.
 */
class WireParser {
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

/** Which namespaces a driver-level request may name: all its token allows, or only its own. */
function scopeOf(scope: RequestScope, others: boolean): NamespaceScope {
  return new NamespaceScope(others ? scope.allows : (ns) => ns === scope.namespace);
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

/** The driver protocol's routes (`/api/driver/*`), as a sub-app mounted at the root. */

/** A range's where filter as the driver protocol sends it, checked and compiled here. */
function whereOf(json: unknown, now: number): { where?: Filter } {
  return json === undefined ? {} : { where: compileWhere(whereFromJson(json), now) };
}

export function driverRoutes(
  core: KvCore,
  options: {
    otherNamespaces: boolean;
    streams: StreamRegistry;
    pingInterval: number;
    trustClientClock: boolean;
  },
): Hono<ServerEnv> {
  const app = new Hono<ServerEnv>();
  const parser = new WireParser(core, options.trustClientClock);
  const scopeFor = (scope: RequestScope) => scopeOf(scope, options.otherNamespaces);
  const nowOf = (claimed: unknown) =>
    options.trustClientClock && Number.isSafeInteger(claimed) ? (claimed as number) : core.now();

  app.post("/api/driver/indexes", async (c) => {
    const body = await readJson(c);
    if (typeof body.namespace !== "string")
      throw new KvError("INVALID_REQUEST", "an index call names its namespace");
    // The default namespace or a user's one: indexes of Cellar's own namespaces are no one's to make.
    if (body.namespace !== "") assertNamespaceName(body.namespace);
    scopeFor(c.get("scope")).prefixLength(encodeKey([body.namespace]));
    const kv = namespaceView(core, body.namespace);
    return c.json(
      (await runIndexCall(kv, body.op, body.args, (level) => requireAccess(c, level))) as object,
    );
  });

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
      limits: core.limits,
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
    const now = nowOf(body.now);
    const parsed = ranges.map((r: { limit?: unknown; reverse?: unknown; where?: unknown }) => {
      if (
        !Number.isSafeInteger(r?.limit) ||
        (r.limit as number) < 0 ||
        (r.limit as number) > 1000
      ) {
        throw new KvError("INVALID_REQUEST", "a range limit is an integer in [0, 1000]");
      }
      return {
        ...parser.range(r as { start: unknown; end: unknown }),
        limit: r.limit as number,
        reverse: r.reverse === true,
        ...whereOf(r.where, now),
      };
    });
    const results = await core.read(parsed, scopeFor(c.get("scope")), {
      now,
      metadata: body.metadata === true,
    });
    return c.json({ results: results.map((entries) => entries.map(entryToWire)) });
  });

  app.post("/api/driver/count", async (c) => {
    requireAccess(c, "read");
    const body = await readJson(c);
    const now = nowOf(body.now);
    const range = { ...parser.range(body), ...whereOf(body.where, now) };
    return c.json({
      count: await core.count(range, scopeFor(c.get("scope")), now),
    });
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
    const scope = scopeFor(c.get("scope"));
    const results = await Promise.all(
      body.writes.map(async (raw): Promise<WireWriteResult> => {
        try {
          const result = await core.commit(
            parser.write(raw),
            scope,
            nowOf((raw as { now?: unknown })?.now),
          );
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
    const revisions = await core.history(parser.key(body.key), scopeFor(c.get("scope")), {
      limit: limit as number,
      now: nowOf(body.now),
    });
    return c.json({ revisions: revisions.map(revisionToWire) });
  });

  app.post("/api/driver/queues", async (c) => {
    requireAccess(c, "read");
    const body = await readJson(c);
    const limit = body.limit;
    if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > 10_000) {
      throw new KvError("INVALID_REQUEST", "limit is an integer in [1, 10000]");
    }
    const names = await core.listQueues(
      parser.range(body),
      scopeFor(c.get("scope")),
      limit as number,
    );
    return c.json({ queues: names.map((name) => b64(name)) });
  });

  app.post("/api/driver/queue", async (c) => {
    const body = await readJson(c);
    const queue = core.queue(parser.queue(body.queue), scopeFor(c.get("scope")));
    const now = nowOf(body.now);
    const ids =
      body.ids === null
        ? null
        : Array.isArray(body.ids) && body.ids.every((id) => typeof id === "string")
          ? (body.ids as string[])
          : undefined;
    const page = (limit: unknown) =>
      Number.isSafeInteger(limit) ? Math.min(limit as number, MAX_QUEUE_PAGE) : limit;
    switch (body.op) {
      case "dequeue": {
        requireAccess(c, "write");
        const leased = await queue.dequeue({
          now,
          visibilityTimeout: body.visibilityTimeout as number,
          limit: page(body.limit) as number,
        });
        return c.json({ messages: leased.map(messageToWire) });
      }
      case "settle": {
        requireAccess(c, "write");
        if (typeof body.settlement !== "object" || body.settlement === null)
          throw new KvError("INVALID_REQUEST", "settlement is { type: ack | nack | extend, … }");
        const ok = await queue.settle(body.token as string, body.settlement as Settlement, now);
        return c.json({ ok });
      }
      case "stats":
        requireAccess(c, "read");
        return c.json(await queue.stats(now));
      case "listDead": {
        requireAccess(c, "read");
        const dead = await queue.listDead({
          limit: page(body.limit) as number,
          ...(typeof body.after === "string" && { after: body.after }),
        });
        return c.json({ messages: dead.map(messageToWire) });
      }
      case "getDead": {
        requireAccess(c, "read");
        if (typeof body.id !== "string")
          throw new KvError("INVALID_REQUEST", "id must be a string");
        const dead = await queue.getDead(body.id);
        return c.json({ message: dead && messageToWire(dead) });
      }
      case "requeueDead":
      case "deleteDead": {
        requireAccess(c, "write");
        if (ids === undefined)
          throw new KvError("INVALID_REQUEST", "ids must be an array of strings, or null for all");
        const count =
          body.op === "requeueDead"
            ? await queue.requeueDead(ids, now)
            : await queue.deleteDead(ids);
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
      return c.json({ deleted: await core.deleteExpired(body.now as number, 100_000) });
    }
    return c.json({ deleted: await core.sweep() });
  });

  app.post("/api/driver/purge", async (c) => {
    // Dropping a namespace is an admin's act, as DELETE /api/namespace is.
    requireAccess(c, "admin");
    const body = await readJson(c);
    const prefix = unb64(body.prefix, "prefix");
    const purged = await core.purgeNamespace(prefix, scopeFor(c.get("scope")), nowOf(body.now));
    return c.json({ purged });
  });

  const visibleChanges = async (scope: RequestScope, after: string, limit: number) => {
    const visible = scopeFor(scope);
    const page = await core.changes(after, limit);
    const changes = page.changes
      .map((change) => ({
        ...change,
        keys: change.keys.filter((key) => visible.covers(key)),
        ...(change.entries && {
          entries: change.entries.filter((c) => visible.covers(c.key)),
        }),
      }))
      .filter((change) => change.keys.length > 0);
    const last = page.changes.at(-1)?.versionstamp;
    return {
      changes,
      truncated: page.truncated,
      head: page.head,
      oldest: page.oldest,
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
      oldest: page.oldest,
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
      let after = resume ?? (await core.changes(NEWEST_VERSIONSTAMP, 0)).head;
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
      const visible = scopeFor(scope);
      const unsubscribe = core.onChange((change) => {
        for (const queue of change.queues ?? []) {
          if (visible.covers(queue))
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

  return app;
}
