/**
 * What `Kv` asks of indexes and search: the database's own {@link IndexEngine}, or, over a
 * network, the server's (`remote.ts`).
 */
import type {
  Filter,
  RawEntry,
  ReadRange,
  SearchOptions,
  SearchPage,
} from "../../contract/index.js";
import type {
  KvExplain,
  KvIndexInfo,
  KvIndexOptions,
  KvIndexSelector,
  KvSearchIndexInfo,
  KvSearchIndexOptions,
} from "./types.js";

/** An index selector's byte range (index keys), and a reader of its entries in index order. */
export interface IndexWalk {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly prefix: Uint8Array | null;
  readonly common: Uint8Array;
  pull(
    range: { start: Uint8Array; end: Uint8Array },
    limit: number,
    reverse: boolean,
    where: Filter | undefined,
    metadata: boolean,
  ): Promise<{ entry: RawEntry; key: Uint8Array }[]>;
}

export type { SearchOptions as SearchCall, SearchPage } from "../../contract/index.js";

export interface IndexService {
  createIndex(namespace: string, name: string, options: KvIndexOptions): Promise<KvIndexInfo>;
  dropIndex(namespace: string, name: string): Promise<void>;
  listIndexes(namespace: string): Promise<KvIndexInfo[]>;
  createSearchIndex(
    namespace: string,
    name: string,
    options: KvSearchIndexOptions,
  ): Promise<KvSearchIndexInfo>;
  dropSearchIndex(namespace: string, name: string): Promise<void>;
  listSearchIndexes(namespace: string): Promise<KvSearchIndexInfo[]>;
  search(
    namespace: string,
    name: string,
    query: string,
    options: SearchOptions,
  ): Promise<SearchPage>;
  explain(range: ReadRange & { readonly where: Filter }): Promise<KvExplain>;
  walk(namespace: string, selector: KvIndexSelector): Promise<IndexWalk>;
}
