/**
 * Secondary indexes and search indexes of one database: their catalogs, their maintenance in
 * every commit, the read planner's execution, index walks, backfills, and search.
 *
 * Everything here is built on the storage contract: index entries are entries of the reserved
 * namespace `$index:<namespace>` written in the same atomic write as the entries they index, and
 * search documents ride in that write too (`AtomicWrite.searchDocs`). So any driver with storage
 * has indexes, and a driver with a search engine has search.
 */
import { fromBase64Url, toBase64Url } from "../../codec/bytes.js";
import { concatBytes, encodeKey, type KvKey, type KvKeyPart } from "../../codec/key.js";
import { decodeValue, encodeValue } from "../../codec/value.js";
import {
  type AtomicWrite,
  type Check,
  type CommitResult,
  type Filter,
  hasSearch,
  type KeyRange,
  type KvDriver,
  type Mutation,
  type RawEntry,
  type ReadRange,
} from "../../contract/index.js";
import { describe, fail, KvError } from "../../errors.js";
import { namespaceOf } from "../scope.js";
import { assertHighlightMarkers, parseSearchQuery } from "../search/query.js";
import {
  assertFields,
  assertIndexName,
  type Catalog,
  COUNTER_KEY,
  catalogKey,
  compileCatalog,
  covers,
  EMPTY_CATALOG,
  indexNamespace,
  LANGUAGES,
  MAX_INDEX_FIELDS,
  MAX_INDEXES,
  MAX_SEARCH_FIELDS,
  type StoredCatalog,
  type StoredIndex,
  type StoredSearchIndex,
  TOKENIZERS,
} from "./catalog.js";
import { beforeRanges, type CatalogOf, derive, touchedKeys } from "./maintain.js";
import { assertReady, IndexReads, notFound, point } from "./reads.js";
import type { IndexService, IndexWalk, SearchCall, SearchPage } from "./service.js";
import type {
  KvExplain,
  KvIndexInfo,
  KvIndexOptions,
  KvIndexProgress,
  KvIndexSelector,
  KvSearchIndexInfo,
  KvSearchIndexOptions,
} from "./types.js";

/** Attempts of a write whose index work keeps meeting concurrent changes. */
const MAX_ATTEMPTS = 32;
/** Entries indexed per commit of a backfill: writers wait for one batch at most. */
const BACKFILL_BATCH = 256;
const MAX_SEARCH_LIMIT = 1000;
const MARK = { start: "<mark>", end: "</mark>" };
/** What a namespace without a cached catalog (or a reserved one) is planned with: nothing to maintain. */
const NO_INDEXES = compileCatalog("", null, EMPTY_CATALOG);

type StoredDef = StoredIndex | StoredSearchIndex;
type Kind = "indexes" | "search";

export class IndexEngine implements IndexService {
  readonly #driver: KvDriver;
  readonly #now: () => number;
  readonly #catalogs = new Map<string, Catalog>();
  /** Namespace names by their stored prefix, so a commit decodes each name once. */
  readonly #names = new Map<string, { name: string; length: number }>();
  /** Commits being prepared (reading before they write), and the end of their chain. */
  readonly #reads: IndexReads;
  #preparing = 0;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(driver: KvDriver, now: () => number) {
    this.#driver = driver;
    this.#now = now;
    this.#reads = new IndexReads(
      driver,
      {
        catalog: (namespace) => this.catalog(namespace),
        load: (namespace) => this.#load(namespace),
        namespace: (key) => this.#namespace(key),
      },
      now,
    );
  }

  // ---- Catalogs ----------------------------------------------------------------------------

  /** `namespace`'s catalog, from the cache or storage. */
  async catalog(namespace: string): Promise<Catalog> {
    return this.#catalogs.get(namespace) ?? this.#load(namespace);
  }

  async #load(namespace: string): Promise<Catalog> {
    const [found = []] = await this.#driver.snapshotRead([point(catalogKey(namespace))], {
      now: this.#now(),
    });
    const raw = found[0];
    const stored = raw ? (decodeValue(raw.value) as StoredCatalog) : EMPTY_CATALOG;
    const catalog = compileCatalog(namespace, raw?.versionstamp ?? null, stored);
    this.#catalogs.set(namespace, catalog);
    return catalog;
  }

  /** Reloads the catalogs of `namespaces`; true when any changed since it was cached. */
  async #refresh(namespaces: Iterable<string>): Promise<boolean> {
    let changed = false;
    for (const namespace of namespaces) {
      const before = this.#catalogs.get(namespace)?.versionstamp;
      const after = (await this.#load(namespace)).versionstamp;
      if (before !== after) changed = true;
    }
    return changed;
  }

  #namespace(key: Uint8Array): { name: string; length: number } {
    // The namespace part ends at the first unescaped 0x00; look it up by its bytes.
    let end = 1;
    while (end < key.length && !(key[end] === 0 && key[end + 1] !== 0xff))
      end += key[end] === 0 ? 2 : 1;
    const id = String.fromCharCode(...key.subarray(0, Math.min(end + 1, key.length)));
    let found = this.#names.get(id);
    if (!found) {
      const { name, prefixLength } = namespaceOf(key);
      found = { name, length: prefixLength };
      if (this.#names.size > 10_000) this.#names.clear();
      this.#names.set(id, found);
    }
    return found;
  }

  // ---- The write path ----------------------------------------------------------------------

  /**
   * Commits `write` with the index work it implies. The fast path (no index covers any key, the
   * catalogs cached) costs one extra check per namespace written.
   */
  commit(write: AtomicWrite): Promise<CommitResult | null> {
    if (this.#preparing > 0 || write.enqueues?.some((e) => e.keysIfUndelivered.length > 0))
      return this.#commitSlow(write, this.#namespacesOf(write), 0);
    if (write.mutations.length === 0) return this.#driver.atomicWrite(write);
    const namespaces = new Map<string, number>();
    let missing = false;
    for (const mutation of write.mutations) {
      const { name, length } = this.#namespace(mutation.key);
      if (name.startsWith("$") || namespaces.has(name)) continue;
      namespaces.set(name, length);
      if (!this.#catalogs.has(name)) missing = true;
    }
    if (namespaces.size === 0) return this.#driver.atomicWrite(write);
    if (missing) return this.#commitSlow(write, namespaces, 0);
    const catalogOf = this.#catalogOf();
    const touched = touchedKeys(write, catalogOf);
    if (touched) return this.#commitSlow(write, namespaces, 0);
    const checks = [...write.checks, ...this.#catalogChecks(namespaces)];
    return this.#driver
      .atomicWrite({ ...write, checks })
      .then((result) => result ?? this.#afterFailure(write, namespaces, false, 0));
  }

  /** Resolves once every commit being prepared has reached the driver (before it closes). */
  async idle(): Promise<void> {
    while (this.#preparing > 0) await this.#tail;
  }

  #namespacesOf(write: AtomicWrite): Map<string, number> {
    const namespaces = new Map<string, number>();
    for (const mutation of write.mutations) {
      const { name, length } = this.#namespace(mutation.key);
      if (!name.startsWith("$")) namespaces.set(name, length);
    }
    return namespaces;
  }

  /** The cached catalog of a stored key's namespace (the writer loaded it); none for `$…` ones. */
  #catalogOf(): CatalogOf {
    return (key) => {
      const { name, length } = this.#namespace(key);
      const catalog = name.startsWith("$") ? undefined : this.#catalogs.get(name);
      return { catalog: catalog ?? NO_INDEXES, namespaceLength: length };
    };
  }

  #catalogChecks(namespaces: Map<string, number>): Check[] {
    return [...namespaces.keys()].map((name) => ({
      key: catalogKey(name),
      versionstamp: this.#catalogs.get(name)?.versionstamp ?? null,
    }));
  }

  /**
   * A commit with reads to do first. Preparations run at once, side by side; each write is handed
   * to the driver only after the writes of the commits made before it, so commits keep the order
   * they were made in (a later write never takes an earlier versionstamp). Two preparations that
   * read the same entry both check its versionstamp: the later write fails its check and is
   * prepared again.
   */
  #commitSlow(
    write: AtomicWrite,
    namespaces: Map<string, number>,
    attempt: number,
  ): Promise<CommitResult | null> {
    this.#preparing++;
    const prepared = this.#prepare(write, namespaces);
    // Its failure is the commit's, reported through `step`; until the chain reaches it, it waits.
    prepared.catch(() => {});
    // A preparation that fails settles only after the commits before it reached the driver, so
    // the commits after it cannot overtake them.
    const step = this.#tail
      .then(() => prepared)
      .then((ready) => ({
        touched: ready.touched,
        result: ready.write ? this.#driver.atomicWrite(ready.write) : null,
      }));
    this.#tail = step.then(
      () => this.#preparing--,
      () => this.#preparing--,
    );
    return step.then(async ({ touched, result }) => {
      if (result === null) return null;
      return (await result) ?? this.#afterFailure(write, namespaces, touched, attempt);
    });
  }

  /**
   * A dead-lettered message's value is written to its `keysIfUndelivered` by the queue itself,
   * outside any commit of this engine: such keys may not lie under an index's prefix.
   */
  async #assertUndelivered(keys: readonly Uint8Array[]): Promise<void> {
    for (const key of keys) {
      const { name } = this.#namespace(key);
      if (name.startsWith("$")) continue;
      const catalog = await this.catalog(name);
      const by = [...catalog.indexes, ...catalog.search].find((index) => covers(index, key));
      if (by)
        throw new KvError(
          "UNSUPPORTED",
          `keysIfUndelivered names a key under the prefix of index ${JSON.stringify(by.def.name)}; the queue writes those keys itself and cannot keep an index`,
        );
    }
  }

  /** The write with its index work; `write: null` when a check of the caller's already fails. */
  async #prepare(
    write: AtomicWrite,
    namespaces: Map<string, number>,
  ): Promise<{ write: AtomicWrite | null; touched: boolean }> {
    for (const name of namespaces.keys()) if (!this.#catalogs.has(name)) await this.#load(name);
    for (const enqueue of write.enqueues ?? [])
      await this.#assertUndelivered(enqueue.keysIfUndelivered);
    const touched = touchedKeys(write, this.#catalogOf());
    const full: AtomicWrite = {
      ...write,
      checks: [...write.checks, ...this.#catalogChecks(namespaces)],
    };
    if (!touched) return { write: full, touched: false };
    const ranges = beforeRanges(touched);
    const read =
      ranges.length > 0 ? await this.#driver.snapshotRead(ranges, { now: write.now }) : [];
    let derived: Awaited<ReturnType<typeof derive>>;
    try {
      derived = await derive(
        write,
        touched,
        read.map((found) => found[0] ?? null),
        (probe) => this.#driver.snapshotRead(probe, { now: write.now }),
      );
    } catch (error) {
      // A failed check wins over what the mutations would do, as in the driver.
      if (error instanceof KvError && !(await this.#checksHold(write)))
        return { write: null, touched: true };
      throw error;
    }
    return {
      touched: true,
      write: {
        ...full,
        checks: [...full.checks, ...derived.checks],
        ...((write.rangeChecks?.length || derived.rangeChecks.length) && {
          rangeChecks: [...(write.rangeChecks ?? []), ...derived.rangeChecks],
        }),
        mutations: [...write.mutations, ...derived.mutations],
        ...(derived.searchDocs.length > 0 && { searchDocs: derived.searchDocs }),
      },
    };
  }

  /** After a failed commit: plan again if the catalogs or the index work went stale, else `null`. */
  async #afterFailure(
    write: AtomicWrite,
    namespaces: Map<string, number>,
    touched: boolean,
    attempt: number,
  ): Promise<CommitResult | null> {
    const stale = await this.#refresh(namespaces.keys());
    if (!stale && !(touched && (await this.#checksHold(write)))) return null;
    if (attempt + 1 >= MAX_ATTEMPTS)
      throw new KvError(
        "CONFLICT",
        `the indexed entries kept changing under this write (${MAX_ATTEMPTS} attempts)`,
      );
    return this.#commitSlow(write, namespaces, attempt + 1);
  }

  /** Whether the caller's own checks hold now. */
  async #checksHold(write: AtomicWrite): Promise<boolean> {
    const rangeChecks = write.rangeChecks ?? [];
    if (write.checks.length === 0 && rangeChecks.length === 0) return true;
    const read = await this.#driver.snapshotRead(
      [
        ...write.checks.map((check) => point(check.key)),
        ...rangeChecks.map((r) => ({
          start: r.start,
          end: r.end,
          limit: r.count + 1,
          reverse: false,
        })),
      ],
      { now: write.now },
    );
    const n = write.checks.length;
    return (
      write.checks.every(
        (check, i) => (read[i]?.[0]?.versionstamp ?? null) === check.versionstamp,
      ) && rangeChecks.every((check, i) => (read[n + i]?.length ?? 0) === check.count)
    );
  }

  // ---- Reads (see `reads.ts`) ---------------------------------------------------------------

  read(
    range: ReadRange & { readonly where: Filter },
    options: { now: number; metadata: boolean },
  ): Promise<RawEntry[] | null> {
    return this.#reads.read(range, options);
  }

  count(range: KeyRange & { readonly where: Filter }, now: number): Promise<number | null> {
    return this.#reads.count(range, now);
  }

  explain(range: ReadRange & { readonly where: Filter }): Promise<KvExplain> {
    return this.#reads.explain(range);
  }

  walk(namespace: string, selector: KvIndexSelector): Promise<IndexWalk> {
    return this.#reads.walk(namespace, selector);
  }

  // ---- Definitions ---------------------------------------------------------------------------

  async createIndex(
    namespace: string,
    name: string,
    options: KvIndexOptions,
  ): Promise<KvIndexInfo> {
    assertIndexName(name);
    assertDefinitionOptions(options, ["prefix", "fields", "unique", "onProgress"]);
    assertFields(options.fields, MAX_INDEX_FIELDS);
    if (options.unique !== undefined && typeof options.unique !== "boolean")
      fail("INVALID_ARGUMENT", `unique is a boolean, got ${describe(options.unique)}`);
    const prefix = assertPrefix(options.prefix);
    const id = await this.#allocate(namespace, "indexes", name);
    const def: StoredIndex = {
      name,
      id,
      prefix,
      fields: [...options.fields],
      unique: options.unique === true,
      state: "building",
      createdAt: this.#now(),
    };
    await this.#define(namespace, "indexes", def);
    await this.#backfill(namespace, "indexes", def, options.onProgress);
    return infoOf(await this.#define(namespace, "indexes", { ...def, state: "ready" }, true));
  }

  async createSearchIndex(
    namespace: string,
    name: string,
    options: KvSearchIndexOptions,
  ): Promise<KvSearchIndexInfo> {
    const driver = this.#driver;
    if (!hasSearch(driver))
      throw new KvError("UNSUPPORTED", "this database's driver has no full-text search");
    assertIndexName(name, "a search index");
    assertDefinitionOptions(options, ["prefix", "fields", "tokenizer", "language", "onProgress"]);
    assertFields(options.fields, MAX_SEARCH_FIELDS);
    const tokenizer = options.tokenizer ?? "word";
    if (!TOKENIZERS.includes(tokenizer))
      fail(
        "INVALID_ARGUMENT",
        `tokenizer is one of ${TOKENIZERS.join(", ")}, got ${describe(tokenizer)}`,
      );
    const language = options.language ?? "english";
    if (!LANGUAGES.includes(language))
      fail(
        "INVALID_ARGUMENT",
        `language is one of ${LANGUAGES.join(", ")}, got ${describe(language)}`,
      );
    const prefix = assertPrefix(options.prefix);
    const id = await this.#allocate(namespace, "search", name);
    await driver.createSearchIndex({ id, fields: options.fields.length, tokenizer, language });
    const def: StoredSearchIndex = {
      name,
      id,
      prefix,
      fields: [...options.fields],
      tokenizer,
      language,
      state: "building",
      createdAt: this.#now(),
    };
    try {
      await this.#define(namespace, "search", def);
    } catch (error) {
      // The name was taken meanwhile: the storage made for this id serves nothing.
      await driver.dropSearchIndex(id).catch(() => {});
      throw error;
    }
    await this.#backfill(namespace, "search", def, options.onProgress);
    return searchInfoOf(await this.#define(namespace, "search", { ...def, state: "ready" }, true));
  }

  /** Reserves an id for a new definition, refusing a taken name or one too many. */
  async #allocate(namespace: string, kind: Kind, name: string): Promise<number> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const catalog = await this.#load(namespace);
      const defs: readonly StoredDef[] = catalog.stored[kind];
      if (defs.some((d) => d.name === name))
        throw new KvError(
          "ALREADY_EXISTS",
          `${kind === "search" ? "search index" : "index"} ${JSON.stringify(name)} already exists in namespace ${JSON.stringify(namespace)}`,
        );
      if (defs.length >= MAX_INDEXES)
        fail(
          "LIMIT_EXCEEDED",
          `a namespace has at most ${MAX_INDEXES} ${kind === "search" ? "search indexes" : "indexes"}`,
        );
      const now = this.#now();
      const [found = []] = await this.#driver.snapshotRead([point(COUNTER_KEY)], { now });
      const current = found[0];
      const id = current ? (decodeValue(current.value) as number) + 1 : 1;
      const done = await this.#driver.atomicWrite({
        checks: [{ key: COUNTER_KEY, versionstamp: current?.versionstamp ?? null }],
        mutations: [{ type: "set", key: COUNTER_KEY, value: encodeValue(id), expiresAt: null }],
        now,
      });
      if (done) return id;
    }
    throw new KvError("CONFLICT", "could not number the new index: too many at once");
  }

  /** Writes `def` into the catalog (adding it, or replacing the one of its id when `replace`). */
  async #define<T extends StoredDef>(
    namespace: string,
    kind: Kind,
    def: T,
    replace = false,
  ): Promise<T> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const catalog = await this.#load(namespace);
      const defs = catalog.stored[kind] as readonly StoredDef[];
      if (replace && !defs.some((d) => d.id === def.id))
        throw new KvError(
          "NOT_FOUND",
          `${JSON.stringify(def.name)} was dropped while it was being built`,
        );
      if (!replace && defs.some((d) => d.name === def.name))
        throw new KvError(
          "ALREADY_EXISTS",
          `${JSON.stringify(def.name)} already exists in namespace ${JSON.stringify(namespace)}`,
        );
      const next = replace ? defs.map((d) => (d.id === def.id ? def : d)) : [...defs, def];
      if (await this.#writeCatalog(catalog, { ...catalog.stored, [kind]: next })) return def;
    }
    throw new KvError("CONFLICT", "the catalog kept changing");
  }

  async #writeCatalog(catalog: Catalog, stored: StoredCatalog): Promise<boolean> {
    const key = catalogKey(catalog.namespace);
    const empty = stored.indexes.length === 0 && stored.search.length === 0;
    const mutation: Mutation = empty
      ? { type: "delete", key }
      : { type: "set", key, value: encodeValue(stored), expiresAt: null };
    const done = await this.#driver.atomicWrite({
      checks: [{ key, versionstamp: catalog.versionstamp }],
      mutations: [mutation],
      now: this.#now(),
    });
    if (done)
      this.#catalogs.set(
        catalog.namespace,
        compileCatalog(catalog.namespace, empty ? null : done.versionstamp, stored),
      );
    return done !== null;
  }

  /**
   * Indexes the entries already under the prefix, a batch per commit, each with checks on the
   * entries it read: writers never wait for more than a batch, and one that changed an entry in
   * between makes the batch read again (it maintained the index for its own write).
   */
  async #backfill(
    namespace: string,
    kind: Kind,
    def: StoredDef,
    onProgress: ((progress: KvIndexProgress) => void) | undefined,
  ): Promise<void> {
    const covered = encodeKey(def.prefix, encodeKey([namespace]));
    const end = concatBytes(covered, 0xff);
    let start = concatBytes(covered, 0x00);
    const total = await this.#driver.count({ start, end }, { now: this.#now() });
    let indexed = 0;
    const namespaceLength = encodeKey([namespace]).length;
    try {
      for (let attempt = 0; ; ) {
        const catalog = await this.catalog(namespace);
        const only = restrict(catalog, kind, def.id);
        if (!only)
          throw new KvError(
            "NOT_FOUND",
            `${JSON.stringify(def.name)} was dropped while it was being built`,
          );
        const now = this.#now();
        const [batch = []] = await this.#driver.snapshotRead(
          [{ start, end, limit: BACKFILL_BATCH, reverse: false }],
          { now },
        );
        if (batch.length === 0) break;
        const touched = batch.map((entry) => ({
          key: entry.key,
          namespaceLength,
          catalog: only,
          fresh: false,
          before: null,
          after: null,
        }));
        const derived = await derive(
          { checks: [], mutations: [], now },
          touched,
          batch,
          (probe) => this.#driver.snapshotRead(probe, { now }),
          true,
        );
        const done = await this.#driver.atomicWrite({
          checks: [
            { key: catalogKey(namespace), versionstamp: catalog.versionstamp },
            ...derived.checks,
          ],
          ...(derived.rangeChecks.length > 0 && { rangeChecks: derived.rangeChecks }),
          mutations: derived.mutations,
          ...(derived.searchDocs.length > 0 && { searchDocs: derived.searchDocs }),
          now,
        });
        if (!done) {
          await this.#load(namespace);
          if (++attempt >= MAX_ATTEMPTS * 4)
            throw new KvError(
              "CONFLICT",
              `the entries under the index's prefix kept changing during its backfill`,
            );
          continue;
        }
        attempt = 0;
        indexed += batch.length;
        onProgress?.({ name: def.name, indexed, total: Math.max(total, indexed) });
        if (batch.length < BACKFILL_BATCH) break;
        start = concatBytes(batch.at(-1)!.key, 0x00);
      }
    } catch (error) {
      await this.#drop(namespace, kind, def.name).catch(() => {});
      throw error;
    }
  }

  async dropIndex(namespace: string, name: string): Promise<void> {
    assertIndexName(name);
    await this.#drop(namespace, "indexes", name);
  }

  async dropSearchIndex(namespace: string, name: string): Promise<void> {
    assertIndexName(name, "a search index");
    await this.#drop(namespace, "search", name);
  }

  async #drop(namespace: string, kind: Kind, name: string): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const catalog = await this.#load(namespace);
      const defs = catalog.stored[kind] as readonly StoredDef[];
      const def = defs.find((d) => d.name === name);
      if (!def) throw notFound(kind === "search" ? "search index" : "index", name, namespace);
      if (
        !(await this.#writeCatalog(catalog, {
          ...catalog.stored,
          [kind]: defs.filter((d) => d !== def),
        }))
      )
        continue;
      // Nothing reads or writes the entries of an index out of the catalog: remove them at leisure.
      if (kind === "search" && hasSearch(this.#driver)) await this.#driver.dropSearchIndex(def.id);
      else
        await this.#driver.purge(encodeKey([indexNamespace(namespace), "e", def.id]), this.#now());
      return;
    }
    throw new KvError("CONFLICT", "the catalog kept changing");
  }

  async listIndexes(namespace: string): Promise<KvIndexInfo[]> {
    return (await this.#load(namespace)).stored.indexes.map(infoOf);
  }

  async listSearchIndexes(namespace: string): Promise<KvSearchIndexInfo[]> {
    return (await this.#load(namespace)).stored.search.map(searchInfoOf);
  }

  /** Before a namespace is dropped: its search storage and its reserved namespace go first. */
  async purgeNamespace(namespace: string): Promise<void> {
    const catalog = await this.#load(namespace);
    if (catalog.versionstamp === null) return;
    if (hasSearch(this.#driver))
      for (const search of catalog.stored.search) await this.#driver.dropSearchIndex(search.id);
    await this.#driver.purge(encodeKey([indexNamespace(namespace)]), this.#now());
    this.#catalogs.delete(namespace);
  }

  // ---- Search ------------------------------------------------------------------------------

  async search(
    namespace: string,
    name: string,
    query: string,
    options: SearchCall,
  ): Promise<SearchPage> {
    const driver = this.#driver;
    if (!hasSearch(driver))
      throw new KvError("UNSUPPORTED", "this database's driver has no full-text search");
    assertIndexName(name, "a search index");
    if (typeof query !== "string")
      fail("INVALID_QUERY", `a query is a string, got ${describe(query)}`);
    if (
      !Number.isSafeInteger(options.limit) ||
      options.limit < 1 ||
      options.limit > MAX_SEARCH_LIMIT
    )
      fail(
        "INVALID_ARGUMENT",
        `limit is an integer from 1 to ${MAX_SEARCH_LIMIT}, got ${describe(options.limit)}`,
      );
    const offset = decodeOffset(options.cursor);
    const highlight = options.highlight === true ? MARK : options.highlight || undefined;
    if (highlight) assertHighlightMarkers(highlight);
    const parsed = parseSearchQuery(query);
    const run = async (fresh: boolean) => {
      const catalog = fresh ? await this.#load(namespace) : await this.catalog(namespace);
      const search = catalog.search.find((s) => s.def.name === name);
      if (!search) {
        if (!fresh) return run(true);
        throw notFound("search index", name, namespace);
      }
      assertReady(search.def);
      try {
        const hits = await driver.search({
          index: search.def.id,
          query: parsed,
          range: { start: concatBytes(search.covers, 0x00), end: concatBytes(search.covers, 0xff) },
          ...(options.where && { where: options.where }),
          limit: options.limit + 1,
          offset,
          ...(highlight && { highlight }),
          now: this.#now(),
          metadata: options.metadata,
        });
        return { hits, search };
      } catch (error) {
        // Dropped (and perhaps made again) by another process since the catalog was cached.
        if (!fresh && error instanceof KvError && error.code === "NOT_FOUND") return run(true);
        throw error;
      }
    };
    const { hits, search } = await run(false);
    const more = hits.length > options.limit;
    return {
      hits: hits.slice(0, options.limit),
      fields: search.def.fields,
      cursor: more ? toBase64Url(new TextEncoder().encode(String(offset + options.limit))) : null,
    };
  }
}

/** `catalog` with only the definition `id` of `kind`, or `null` when it is gone. */
function restrict(catalog: Catalog, kind: Kind, id: number): Catalog | null {
  const indexes = kind === "indexes" ? catalog.indexes.filter((i) => i.def.id === id) : [];
  const search = kind === "search" ? catalog.search.filter((s) => s.def.id === id) : [];
  if (indexes.length + search.length === 0) return null;
  return { ...catalog, indexes, search };
}

function decodeOffset(cursor: string | undefined): number {
  if (cursor === undefined || cursor === "") return 0;
  const bytes = typeof cursor === "string" ? fromBase64Url(cursor) : null;
  const text = bytes ? new TextDecoder().decode(bytes) : "";
  if (!/^\d{1,9}$/.test(text))
    fail("INVALID_CURSOR", `not a cursor of this search: ${describe(cursor)}`);
  return Number(text);
}

function assertPrefix(prefix: unknown): KvKey {
  if (!Array.isArray(prefix))
    fail(
      "INVALID_ARGUMENT",
      `prefix is a key prefix (an array of key parts), got ${describe(prefix)}`,
    );
  try {
    encodeKey(prefix as KvKeyPart[]);
  } catch (error) {
    fail("INVALID_ARGUMENT", `prefix: ${(error as Error).message.replace(/^\[cellar\] /, "")}`);
  }
  return [...prefix] as KvKey;
}

function assertDefinitionOptions(options: unknown, allowed: readonly string[]): void {
  if (typeof options !== "object" || options === null)
    fail(
      "INVALID_ARGUMENT",
      `options is an object with ${allowed.join(", ")}, got ${describe(options)}`,
    );
  for (const key of Object.keys(options))
    if (!allowed.includes(key))
      fail(
        "INVALID_ARGUMENT",
        `unknown option ${JSON.stringify(key)}; the options are ${allowed.join(", ")}`,
      );
  if (
    "onProgress" in options &&
    options.onProgress !== undefined &&
    typeof options.onProgress !== "function"
  )
    fail("INVALID_ARGUMENT", "onProgress is a function");
}

const infoOf = (def: StoredIndex): KvIndexInfo => ({
  name: def.name,
  prefix: def.prefix,
  fields: def.fields,
  unique: def.unique,
  state: def.state,
  createdAt: def.createdAt,
});

const searchInfoOf = (def: StoredSearchIndex): KvSearchIndexInfo => ({
  name: def.name,
  prefix: def.prefix,
  fields: def.fields,
  tokenizer: def.tokenizer,
  language: def.language,
  state: def.state,
  createdAt: def.createdAt,
});
