/**
 * The driver protocol's index calls (`POST /api/driver/indexes`): what the remote client sends
 * for the `Kv` index methods of a namespace, `{ op, args }` in JSON, answered with the remote
 * driver's JSON forms (`drivers/remote/indexes.ts`): entries as the protocol's entries, byte
 * ranges of index walks in base64url.
 */
import { compareBytes, type KvKey } from "../../codec/key.js";
import type { Kv } from "../../core/kv.js";
import { coreOf } from "../../core/surface.js";
import { compileWhere } from "../../core/where/compile.js";
import { bareMessage, describe, fail, KvError } from "../../errors.js";
import { keyFromJson, whereFromJson } from "../../wire/json.js";
import { b64, entryToWire, unb64 } from "../../wire/protocol.js";
import { indexJson, indexSelectorOfJson, searchIndexJson } from "./indexes.js";

const args = <T>(value: unknown): T => {
  if (typeof value !== "object" || value === null)
    throw new KvError("INVALID_REQUEST", "an index call's args is an object");
  return value as T;
};

/**
 * One call of the remote driver on the indexes of `kv`'s namespace (`POST /api/driver/indexes`);
 * the caller has checked the namespace against the token. Answers JSON.
 */
export async function runIndexCall(
  kv: Kv,
  op: unknown,
  raw: unknown,
  access: (level: "read" | "admin") => void,
): Promise<unknown> {
  switch (op) {
    case "listIndexes":
      access("read");
      return (await kv.listIndexes()).map(indexJson);
    case "listSearchIndexes":
      access("read");
      return (await kv.listSearchIndexes()).map(searchIndexJson);
    case "createIndex": {
      access("admin");
      const { name, prefix, ...rest } = args<{ name: string; prefix: unknown; fields: string[] }>(
        raw,
      );
      let indexed = 0;
      const info = await kv.createIndex(name, {
        ...rest,
        prefix: prefixOfJson(prefix),
        onProgress: (progress) => {
          indexed = progress.indexed;
        },
      });
      return { ...indexJson(info), indexed };
    }
    case "createSearchIndex": {
      access("admin");
      const { name, prefix, ...rest } = args<{ name: string; prefix: unknown; fields: string[] }>(
        raw,
      );
      let indexed = 0;
      const info = await kv.createSearchIndex(name, {
        ...rest,
        prefix: prefixOfJson(prefix),
        onProgress: (progress) => {
          indexed = progress.indexed;
        },
      });
      return { ...searchIndexJson(info), indexed };
    }
    case "dropIndex":
      access("admin");
      await kv.dropIndex(args<{ name: string }>(raw).name);
      return {};
    case "dropSearchIndex":
      access("admin");
      await kv.dropSearchIndex(args<{ name: string }>(raw).name);
      return {};
    case "search": {
      access("read");
      const { name, query, where, ...rest } = args<{
        name: string;
        query: string;
        where?: unknown;
      }>(raw);
      const { core, keyspace } = coreOf(kv);
      const page = await core.indexService.search(keyspace.namespace, name, query, {
        where: where === undefined ? undefined : compileUserWhere(kv, where),
        limit: (rest as { limit?: number }).limit ?? 20,
        cursor: (rest as { cursor?: string }).cursor,
        highlight: (rest as { highlight?: boolean | { start: string; end: string } }).highlight,
        metadata: (rest as { metadata?: boolean }).metadata === true,
      });
      return {
        hits: page.hits.map((hit) => ({ ...hit, entry: entryToWire(hit.entry) })),
        fields: page.fields,
        cursor: page.cursor,
      };
    }
    case "explain": {
      access("read");
      const { start, end, where } = args<{ start: unknown; end: unknown; where: unknown }>(raw);
      const { core, keyspace } = coreOf(kv);
      const range = { start: unb64(start, "start"), end: unb64(end, "end") };
      keyspace.assertRange(range.start, range.end);
      return core.indexService.explain({
        ...range,
        limit: 1,
        reverse: false,
        where: compileUserWhere(kv, where),
      });
    }
    case "walk": {
      access("read");
      const call = args<{
        selector: unknown;
        range?: { start: unknown; end: unknown };
        limit?: unknown;
        reverse?: unknown;
        where?: unknown;
        metadata?: unknown;
      }>(raw);
      const { core, keyspace } = coreOf(kv);
      const walk = await core.indexService.walk(
        keyspace.namespace,
        indexSelectorOfJson(call.selector),
      );
      if (!call.range)
        return {
          start: b64(walk.start),
          end: b64(walk.end),
          prefix: walk.prefix && b64(walk.prefix),
          common: b64(walk.common),
        };
      const range = { start: unb64(call.range.start, "start"), end: unb64(call.range.end, "end") };
      // The range must lie in the walk's own: a client never reads other index keys this way.
      if (compareBytes(range.start, walk.start) < 0 || compareBytes(range.end, walk.end) > 0)
        throw new KvError("INVALID_CURSOR", "the range lies outside the index selector");
      const limit = call.limit;
      if (!Number.isSafeInteger(limit) || (limit as number) < 1 || (limit as number) > 1000)
        throw new KvError("INVALID_REQUEST", "limit is an integer in [1, 1000]");
      const found = await walk.pull(
        range,
        limit as number,
        call.reverse === true,
        call.where === undefined ? undefined : compileUserWhere(kv, call.where),
        call.metadata === true,
      );
      return {
        entries: found.map(({ entry, key }) => ({ entry: entryToWire(entry), key: b64(key) })),
      };
    }
    default:
      throw new KvError("INVALID_REQUEST", `unknown index call ${describe(op)}`);
  }
}

/** An index's prefix given as JSON; anything else is the caller's mistake with the definition. */
function prefixOfJson(json: unknown): KvKey {
  if (!Array.isArray(json))
    fail(
      "INVALID_ARGUMENT",
      `prefix is a key prefix (an array of key parts), got ${describe(json)}`,
    );
  try {
    return keyFromJson(json);
  } catch (error) {
    fail("INVALID_ARGUMENT", `prefix: ${bareMessage(error as Error)}`);
  }
}

function compileUserWhere(kv: Kv, where: unknown) {
  return compileWhere(whereFromJson(where), coreOf(kv).core.now());
}
