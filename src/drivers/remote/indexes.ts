/**
 * The remote driver's index calls (`KvIndexHost`): each is one `POST /api/driver/indexes` with
 * `{ namespace, op, args }`, answered by the server's own indexes. Keys travel in the wire's
 * JSON key form, filters in the where language, entries as the driver protocol's entries.
 */
import type {
  IndexInfo,
  IndexPlanInfo,
  IndexSelector,
  KvIndexHost,
  SearchHit,
  SearchIndexInfo,
} from "../../contract/index.js";
import { bareMessage, KvError } from "../../errors.js";
import { keyFromJson, keyToJson, valueToJson } from "../../wire/json.js";
import { b64, entryFromWire, unb64, type WireEntry, whereOfFilter } from "../../wire/protocol.js";

type Call = (namespace: string, op: string, args: Record<string, unknown>) => Promise<unknown>;
type WithJsonPrefix<T> = Omit<T, "prefix"> & { prefix: unknown };

const fromInfo = <T extends { prefix: unknown }>(info: WithJsonPrefix<T>): T =>
  ({ ...info, prefix: keyFromJson(info.prefix) }) as T;

/** A prefix in JSON; what cannot be one goes as it is, for the server to refuse. */
function prefixJson(prefix: unknown): unknown {
  if (!Array.isArray(prefix)) return prefix;
  try {
    return keyToJson(prefix);
  } catch (error) {
    throw new KvError("INVALID_ARGUMENT", `prefix: ${bareMessage(error as Error)}`);
  }
}

const selectorJson = (selector: IndexSelector) => {
  const values = (list: readonly unknown[] | undefined) => list?.map((v) => valueToJson(v));
  return {
    index: selector.index,
    ...(selector.prefix && { prefix: values(selector.prefix) }),
    ...(selector.start && { start: values(selector.start) }),
    ...(selector.end && { end: values(selector.end) }),
  };
};

export function remoteIndexHost(call: Call): KvIndexHost {
  const created = async <T extends { prefix: unknown }>(
    namespace: string,
    op: string,
    args: Record<string, unknown>,
  ) => {
    const { indexed, ...info } = (await call(namespace, op, args)) as WithJsonPrefix<T> & {
      indexed: number;
    };
    return { info: fromInfo<T>(info as unknown as WithJsonPrefix<T>), indexed };
  };
  return {
    createIndex: (namespace, name, definition) =>
      created<IndexInfo>(namespace, "createIndex", {
        name,
        ...definition,
        prefix: prefixJson(definition.prefix),
      }),
    async dropIndex(namespace, name) {
      await call(namespace, "dropIndex", { name });
    },
    async listIndexes(namespace) {
      const list = (await call(namespace, "listIndexes", {})) as WithJsonPrefix<IndexInfo>[];
      return list.map((info) => fromInfo<IndexInfo>(info));
    },
    createSearchIndex: (namespace, name, definition) =>
      created<SearchIndexInfo>(namespace, "createSearchIndex", {
        name,
        ...definition,
        prefix: prefixJson(definition.prefix),
      }),
    async dropSearchIndex(namespace, name) {
      await call(namespace, "dropSearchIndex", { name });
    },
    async listSearchIndexes(namespace) {
      const list = (await call(
        namespace,
        "listSearchIndexes",
        {},
      )) as WithJsonPrefix<SearchIndexInfo>[];
      return list.map((info) => fromInfo<SearchIndexInfo>(info));
    },
    async search(namespace, name, query, options) {
      const page = (await call(namespace, "search", {
        name,
        query,
        ...(options.where && { where: whereOfFilter(options.where) }),
        limit: options.limit,
        ...(options.cursor !== undefined && { cursor: options.cursor }),
        ...(options.highlight !== undefined && { highlight: options.highlight }),
        metadata: options.metadata,
      })) as {
        hits: (Omit<SearchHit, "entry"> & { entry: WireEntry })[];
        fields: string[];
        cursor: string | null;
      };
      return {
        hits: page.hits.map((hit) => ({ ...hit, entry: entryFromWire(hit.entry) })),
        fields: page.fields,
        cursor: page.cursor,
      };
    },
    async explain(namespace, range, where) {
      return (await call(namespace, "explain", {
        start: b64(range.start),
        end: b64(range.end),
        where: whereOfFilter(where),
      })) as IndexPlanInfo;
    },
    async walkBounds(namespace, selector) {
      const bounds = (await call(namespace, "walk", { selector: selectorJson(selector) })) as {
        start: string;
        end: string;
        prefix: string | null;
        common: string;
      };
      return {
        start: unb64(bounds.start),
        end: unb64(bounds.end),
        prefix: bounds.prefix === null ? null : unb64(bounds.prefix),
        common: unb64(bounds.common),
      };
    },
    async walk(namespace, selector, { range, limit, reverse, where, metadata }) {
      const found = (await call(namespace, "walk", {
        selector: selectorJson(selector),
        range: { start: b64(range.start), end: b64(range.end) },
        limit,
        reverse,
        ...(where && { where: whereOfFilter(where) }),
        metadata,
      })) as { entries: { entry: WireEntry; key: string }[] };
      return found.entries.map(({ entry, key }) => ({
        entry: entryFromWire(entry),
        key: unb64(key),
      }));
    },
  };
}
