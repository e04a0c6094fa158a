/**
 * The driver protocol's calls (`wire/protocol.ts`), apart from how they arrive: each takes the
 * caller's scope and its JSON body and answers JSON. The HTTP routes (`POST /api/driver/<op>`,
 * `driver.ts`) and the driver socket (`../driver-socket.ts`) both run them, so a call is checked
 * (token access, namespaces, limits) the same way whichever way it came.
 *
 * Keys arrive as stored bytes; this module parses them (every key must decode, every value too)
 * and hands them to the core's commit pipeline and read path with the request's scope, the
 * namespaces its token may use, where limits and namespaces are checked as for every face.
 */
import { encodeKey } from "../../codec/key.js";
import { assertVersionstamp, NEWEST_VERSIONSTAMP } from "../../codec/versionstamp.js";
import type { Filter, Settlement } from "../../contract/index.js";
import {
  assertNamespaceName,
  type KvCore,
  MAX_QUEUE_PAGE,
  NamespaceScope,
  namespaceView,
} from "../../core/surface.js";
import { compileWhere } from "../../core/where/compile.js";
import { bareMessage, describe, KvError } from "../../errors.js";
import { type Access, assertAccess, type RequestScope } from "../../http/auth.js";
import { whereFromJson } from "../../wire/json.js";
import {
  b64,
  changeToWire,
  type DriverOp,
  entryToWire,
  messageToWire,
  PROTOCOL_VERSION,
  revisionToWire,
  type ServerInfo,
  unb64,
  type WireWriteResult,
} from "../../wire/protocol.js";
import { WireParser } from "./driver-parser.js";
import { runIndexCall } from "./index-calls.js";

const MAX_WRITES_PER_REQUEST = 1000;
const MAX_RANGES_PER_REQUEST = 1000;

/** Which namespaces a driver-level request may name: all its token allows, or only its own. */
export function scopeOf(scope: RequestScope, others: boolean): NamespaceScope {
  return new NamespaceScope(others ? scope.allows : (ns) => ns === scope.namespace);
}

/** A range's where filter as the driver protocol sends it, checked and compiled here. */
function whereOf(json: unknown, now: number): { where?: Filter } {
  return json === undefined ? {} : { where: compileWhere(whereFromJson(json), now) };
}

/** One call: the access it needs before its body is read (`null`: it checks its own), and its work. */
export interface DriverCall {
  readonly access: Access | null;
  readonly run: (scope: RequestScope, body: Record<string, unknown>) => Promise<unknown>;
}

export interface DriverCallOptions {
  /** Whether a token of several namespaces may name them all (`--namespace-from token`). */
  readonly otherNamespaces: boolean;
  readonly trustClientClock: boolean;
  /** What `info` tells clients of the driver socket; none: the server has none. */
  readonly socket?: ServerInfo["socket"];
}

/**
 * The driver protocol's calls over `core`, by name. A caller checks `access`, then runs the
 * call with a JSON object as its body; a call throws `KvError`s with the codes HTTP maps.
 *
 * @example
 * const calls = driverCalls(core, { otherNamespaces: true, trustClientClock: false });
 * const { results } = await calls.read.run(scope, { ranges, metadata: false });
 */
export function driverCalls(
  core: KvCore,
  options: DriverCallOptions,
): Readonly<Record<DriverOp, DriverCall>> {
  const parser = new WireParser(core, options.trustClientClock);
  const scopeFor = (scope: RequestScope) => scopeOf(scope, options.otherNamespaces);
  const nowOf = (claimed: unknown) =>
    options.trustClientClock && Number.isSafeInteger(claimed) ? (claimed as number) : core.now();
  const limitOf = (limit: unknown) => {
    if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > 10_000) {
      throw new KvError("INVALID_REQUEST", "limit is an integer in [1, 10000]");
    }
    return limit as number;
  };

  return {
    info: {
      access: null,
      run: async (scope) =>
        ({
          protocol: PROTOCOL_VERSION,
          namespace: scope.namespace,
          otherNamespaces:
            options.otherNamespaces &&
            (scope.grant === null ||
              scope.grant.namespaces.length > 1 ||
              scope.grant.namespaces.includes("*")),
          access: scope.access,
          limits: core.limits,
          ...(options.socket && { socket: options.socket }),
        }) satisfies ServerInfo,
    },

    indexes: {
      access: null,
      run: async (scope, body) => {
        if (typeof body.namespace !== "string")
          throw new KvError("INVALID_REQUEST", "an index call names its namespace");
        // The default namespace or a user's one: indexes of Cellar's own namespaces are no one's to make.
        if (body.namespace !== "") assertNamespaceName(body.namespace);
        scopeFor(scope).prefixLength(encodeKey([body.namespace]));
        const kv = namespaceView(core, body.namespace);
        return runIndexCall(kv, body.op, body.args, (level) => assertAccess(scope, level));
      },
    },

    read: {
      access: "read",
      run: async (scope, body) => {
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
        const results = await core.read(parsed, scopeFor(scope), {
          now,
          metadata: body.metadata === true,
        });
        return { results: results.map((entries) => entries.map(entryToWire)) };
      },
    },

    count: {
      access: "read",
      run: async (scope, body) => {
        const now = nowOf(body.now);
        const range = { ...parser.range(body), ...whereOf(body.where, now) };
        return { count: await core.count(range, scopeFor(scope), now) };
      },
    },

    write: {
      access: "write",
      run: async (scope, body) => {
        if (!Array.isArray(body.writes) || body.writes.length > MAX_WRITES_PER_REQUEST) {
          throw new KvError(
            "INVALID_REQUEST",
            `writes must be an array of at most ${MAX_WRITES_PER_REQUEST}`,
          );
        }
        const visible = scopeFor(scope);
        const results = await Promise.all(
          body.writes.map(async (raw): Promise<WireWriteResult> => {
            try {
              const result = await core.commit(
                parser.write(raw),
                visible,
                nowOf((raw as { now?: unknown })?.now),
              );
              if (!result) return { failed: true };
              return {
                vs: result.versionstamp,
                ...(result.enqueued && { enqueued: result.enqueued }),
              };
            } catch (error) {
              if (!(error instanceof KvError)) throw error;
              return { error: { code: error.code, message: bareMessage(error) } };
            }
          }),
        );
        return { results };
      },
    },

    history: {
      access: "read",
      run: async (scope, body) => {
        const limit = limitOf(body.limit);
        const revisions = await core.history(parser.key(body.key), scopeFor(scope), {
          limit,
          now: nowOf(body.now),
        });
        return { revisions: revisions.map(revisionToWire) };
      },
    },

    queues: {
      access: "read",
      run: async (scope, body) => {
        const limit = limitOf(body.limit);
        const names = await core.listQueues(parser.range(body), scopeFor(scope), limit);
        return { queues: names.map((name) => b64(name)) };
      },
    },

    queue: {
      access: null,
      run: async (scope, body) =>
        queueCall(core, parser.queue(body.queue), scopeFor(scope), scope, body, nowOf(body.now)),
    },

    sweep: {
      access: "write",
      run: async (_scope, body) => {
        if (options.trustClientClock && Number.isSafeInteger(body.now)) {
          return { deleted: await core.deleteExpired(body.now as number, 100_000) };
        }
        return { deleted: await core.sweep() };
      },
    },

    purge: {
      // Dropping a namespace is an admin's act, as DELETE /api/namespace is.
      access: "admin",
      run: async (scope, body) => {
        const prefix = unb64(body.prefix, "prefix");
        return {
          purged: await core.purgeNamespace(prefix, scopeFor(scope), nowOf(body.now)),
        };
      },
    },

    changes: {
      access: "read",
      run: async (scope, body) => {
        assertVersionstamp(body.after);
        const limit = Number.isSafeInteger(body.limit) ? Math.min(body.limit as number, 1000) : 100;
        const page = await visibleChanges(
          core,
          scopeFor(scope),
          (body.after as string | null) ?? NEWEST_VERSIONSTAMP,
          limit,
        );
        return {
          changes: page.changes.map(changeToWire),
          truncated: page.truncated,
          head: page.head,
          oldest: page.oldest,
        };
      },
    },
  };
}

/** One queue operation (`op`) of the driver protocol; each checks the access it needs. */
async function queueCall(
  core: KvCore,
  name: Uint8Array,
  visible: NamespaceScope,
  scope: RequestScope,
  body: Record<string, unknown>,
  now: number,
): Promise<unknown> {
  const queue = core.queue(name, visible);
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
      assertAccess(scope, "write");
      const leased = await queue.dequeue({
        now,
        visibilityTimeout: body.visibilityTimeout as number,
        limit: page(body.limit) as number,
      });
      return { messages: leased.map(messageToWire) };
    }
    case "settle": {
      assertAccess(scope, "write");
      if (typeof body.settlement !== "object" || body.settlement === null)
        throw new KvError("INVALID_REQUEST", "settlement is { type: ack | nack | extend, … }");
      return { ok: await queue.settle(body.token as string, body.settlement as Settlement, now) };
    }
    case "stats":
      assertAccess(scope, "read");
      return queue.stats(now);
    case "listDead": {
      assertAccess(scope, "read");
      const dead = await queue.listDead({
        limit: page(body.limit) as number,
        ...(typeof body.after === "string" && { after: body.after }),
      });
      return { messages: dead.map(messageToWire) };
    }
    case "getDead": {
      assertAccess(scope, "read");
      if (typeof body.id !== "string") throw new KvError("INVALID_REQUEST", "id must be a string");
      const dead = await queue.getDead(body.id);
      return { message: dead && messageToWire(dead) };
    }
    case "requeueDead":
    case "deleteDead": {
      assertAccess(scope, "write");
      if (ids === undefined)
        throw new KvError("INVALID_REQUEST", "ids must be an array of strings, or null for all");
      const count =
        body.op === "requeueDead" ? await queue.requeueDead(ids, now) : await queue.deleteDead(ids);
      return { count };
    }
    default:
      throw new KvError("INVALID_REQUEST", `unknown queue op ${describe(body.op)}`);
  }
}

/**
 * A page of the change log as `visible` may see it: each change keeps the keys (and entries)
 * the scope covers, and changes left with none are dropped; `position` is where the next page
 * starts.
 */
export async function visibleChanges(
  core: KvCore,
  visible: NamespaceScope,
  after: string,
  limit: number,
) {
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
}
