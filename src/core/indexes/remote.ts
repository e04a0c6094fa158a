/**
 * Indexes over a network: every call goes to the server behind the remote driver
 * (`KvIndexHost`), which keeps the indexes in its own commits.
 */
import type { Filter, KvIndexHost, ReadRange } from "../../contract/index.js";
import { namespaceOf } from "../scope.js";
import type { IndexService, IndexWalk, SearchCall } from "./service.js";
import type {
  KvExplain,
  KvIndexInfo,
  KvIndexOptions,
  KvIndexSelector,
  KvSearchIndexInfo,
  KvSearchIndexOptions,
} from "./types.js";

export class RemoteIndexes implements IndexService {
  constructor(private readonly host: KvIndexHost) {}

  async createIndex(
    namespace: string,
    name: string,
    options: KvIndexOptions,
  ): Promise<KvIndexInfo> {
    const { onProgress, ...definition } = options;
    const { info, indexed } = await this.host.createIndex(namespace, name, definition);
    // The server indexed the entries before it answered: one report, at the end.
    onProgress?.({ name, indexed, total: indexed });
    return info;
  }

  dropIndex(namespace: string, name: string): Promise<void> {
    return this.host.dropIndex(namespace, name);
  }

  listIndexes(namespace: string): Promise<KvIndexInfo[]> {
    return this.host.listIndexes(namespace);
  }

  async createSearchIndex(
    namespace: string,
    name: string,
    options: KvSearchIndexOptions,
  ): Promise<KvSearchIndexInfo> {
    const { onProgress, ...definition } = options;
    const { info, indexed } = await this.host.createSearchIndex(namespace, name, definition);
    onProgress?.({ name, indexed, total: indexed });
    return info;
  }

  dropSearchIndex(namespace: string, name: string): Promise<void> {
    return this.host.dropSearchIndex(namespace, name);
  }

  listSearchIndexes(namespace: string): Promise<KvSearchIndexInfo[]> {
    return this.host.listSearchIndexes(namespace);
  }

  search(namespace: string, name: string, query: string, options: SearchCall) {
    return this.host.search(namespace, name, query, options);
  }

  explain(range: ReadRange & { readonly where: Filter }): Promise<KvExplain> {
    return this.host.explain(namespaceOf(range.start).name, range, range.where);
  }

  async walk(namespace: string, selector: KvIndexSelector): Promise<IndexWalk> {
    const bounds = await this.host.walkBounds(namespace, selector);
    return {
      ...bounds,
      pull: (range, limit, reverse, where, metadata) =>
        this.host.walk(namespace, selector, { range, limit, reverse, where, metadata }),
    };
  }
}
