/**
 * Indexes over a network: every call goes to the server behind the remote driver
 * (`KvIndexHost`), which keeps the indexes in its own commits. Keys travel in the wire's JSON
 * key form, filters in the where language, entries as the driver protocol's entries.
 */
import type { Filter, KvIndexHost, ReadRange, SearchHit } from "../../contract/index.js";
import { bareMessage, KvError } from "../../errors.js";
import { keyFromJson, keyToJson, valueToJson } from "../../wire/json.js";
import { b64, entryFromWire, unb64, type WireEntry, whereOfFilter } from "../../wire/protocol.js";
import { namespaceOf } from "../scope.js";
import type { IndexService, IndexWalk, SearchCall, SearchPage } from "./service.js";
import type {
  KvExplain,
  KvIndexInfo,
  KvIndexOptions,
  KvIndexSelector,
  KvSearchIndexInfo,
  KvSearchIndexOptions,
} from "./types.js";

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

const values = (list: readonly unknown[] | undefined) => list?.map((v) => valueToJson(v));

export class RemoteIndexes implements IndexService {
  constructor(private readonly host: KvIndexHost) {}

  async createIndex(
    namespace: string,
    name: string,
    options: KvIndexOptions,
  ): Promise<KvIndexInfo> {
    const { onProgress, ...rest } = options;
    const { indexed, ...info } = (await this.host.indexCall(namespace, {
      op: "createIndex",
      args: { name, ...rest, prefix: prefixJson(options.prefix) },
    })) as WithJsonPrefix<KvIndexInfo> & { indexed: number };
    // The server indexed the entries before it answered: one report, at the end.
    onProgress?.({ name, indexed, total: indexed });
    return fromInfo<KvIndexInfo>(info);
  }

  async dropIndex(namespace: string, name: string): Promise<void> {
    await this.host.indexCall(namespace, { op: "dropIndex", args: { name } });
  }

  async listIndexes(namespace: string): Promise<KvIndexInfo[]> {
    const list = (await this.host.indexCall(namespace, {
      op: "listIndexes",
      args: {},
    })) as WithJsonPrefix<KvIndexInfo>[];
    return list.map((info) => fromInfo<KvIndexInfo>(info));
  }

  async createSearchIndex(
    namespace: string,
    name: string,
    options: KvSearchIndexOptions,
  ): Promise<KvSearchIndexInfo> {
    const { onProgress, ...rest } = options;
    const { indexed, ...info } = (await this.host.indexCall(namespace, {
      op: "createSearchIndex",
      args: { name, ...rest, prefix: prefixJson(options.prefix) },
    })) as WithJsonPrefix<KvSearchIndexInfo> & { indexed: number };
    onProgress?.({ name, indexed, total: indexed });
    return fromInfo<KvSearchIndexInfo>(info);
  }

  async dropSearchIndex(namespace: string, name: string): Promise<void> {
    await this.host.indexCall(namespace, { op: "dropSearchIndex", args: { name } });
  }

  async listSearchIndexes(namespace: string): Promise<KvSearchIndexInfo[]> {
    const list = (await this.host.indexCall(namespace, {
      op: "listSearchIndexes",
      args: {},
    })) as WithJsonPrefix<KvSearchIndexInfo>[];
    return list.map((info) => fromInfo<KvSearchIndexInfo>(info));
  }

  async search(
    namespace: string,
    name: string,
    query: string,
    options: SearchCall,
  ): Promise<SearchPage> {
    const page = (await this.host.indexCall(namespace, {
      op: "search",
      args: {
        name,
        query,
        ...(options.where && { where: whereOfFilter(options.where) }),
        limit: options.limit,
        ...(options.cursor !== undefined && { cursor: options.cursor }),
        ...(options.highlight !== undefined && { highlight: options.highlight }),
        metadata: options.metadata,
      },
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
  }

  async explain(range: ReadRange & { readonly where: Filter }): Promise<KvExplain> {
    return (await this.host.indexCall(namespaceOf(range.start).name, {
      op: "explain",
      args: { start: b64(range.start), end: b64(range.end), where: whereOfFilter(range.where) },
    })) as KvExplain;
  }

  async walk(namespace: string, selector: KvIndexSelector): Promise<IndexWalk> {
    const wireSelector = {
      index: selector.index,
      ...(selector.prefix && { prefix: values(selector.prefix) }),
      ...(selector.start && { start: values(selector.start) }),
      ...(selector.end && { end: values(selector.end) }),
    };
    const bounds = (await this.host.indexCall(namespace, {
      op: "walk",
      args: { selector: wireSelector },
    })) as { start: string; end: string; prefix: string | null; common: string };
    return {
      start: unb64(bounds.start),
      end: unb64(bounds.end),
      prefix: bounds.prefix === null ? null : unb64(bounds.prefix),
      common: unb64(bounds.common),
      pull: async (range, limit, reverse, where, metadata) => {
        const found = (await this.host.indexCall(namespace, {
          op: "walk",
          args: {
            selector: wireSelector,
            range: { start: b64(range.start), end: b64(range.end) },
            limit,
            reverse,
            ...(where && { where: whereOfFilter(where) }),
            metadata,
          },
        })) as { entries: { entry: WireEntry; key: string }[] };
        return found.entries.map(({ entry, key }) => ({
          entry: entryFromWire(entry),
          key: unb64(key),
        }));
      },
    };
  }
}
