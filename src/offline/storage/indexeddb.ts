/**
 * A client store's storage in the browser's IndexedDB (through `idb`): three object stores —
 * `entries` (the replica, by key id), `outbox` (by write id) and `meta` (the client's id and
 * its resume point) — each `save` one read-write transaction over all three, so a reload finds
 * all of a save or none of it.
 */
import { type DBSchema, type IDBPDatabase, openDB } from "idb";
import { KvError } from "../../errors.js";
import type { ClientStorage, StorageChanges, StoredState } from "../types.js";

interface Schema extends DBSchema {
  entries: { key: string; value: string };
  outbox: { key: number; value: string };
  meta: { key: string; value: string };
}

const STORES = ["entries", "outbox", "meta"] as const;

/**
 * @example
 * const kv = await createClientKv({ url, storage: indexedDbStorage("my-app") });
 */
export function indexedDbStorage(name: string): ClientStorage {
  let db: Promise<IDBPDatabase<Schema>> | null = null;
  const open = () => {
    if (typeof indexedDB === "undefined")
      throw new KvError(
        "UNSUPPORTED",
        "IndexedDB is not available here; pass storage: memoryStorage()",
      );
    db ??= openDB<Schema>(name, 1, {
      upgrade(database) {
        for (const store of STORES) database.createObjectStore(store);
      },
    });
    return db;
  };
  return {
    async load(): Promise<StoredState> {
      const tx = (await open()).transaction(STORES, "readonly");
      const [ids, jsons, outboxIds, outboxJsons, metaKeys, metaValues] = await Promise.all([
        tx.objectStore("entries").getAllKeys(),
        tx.objectStore("entries").getAll(),
        tx.objectStore("outbox").getAllKeys(),
        tx.objectStore("outbox").getAll(),
        tx.objectStore("meta").getAllKeys(),
        tx.objectStore("meta").getAll(),
      ]);
      return {
        entries: ids.map((id, i) => ({ id, json: jsons[i]! })),
        outbox: outboxIds.map((id, i) => ({ id, json: outboxJsons[i]! })),
        meta: Object.fromEntries(metaKeys.map((key, i) => [key, metaValues[i]!])),
      };
    },
    async save(changes: StorageChanges): Promise<void> {
      const tx = (await open()).transaction(STORES, "readwrite");
      const entries = tx.objectStore("entries");
      const outbox = tx.objectStore("outbox");
      const meta = tx.objectStore("meta");
      if (changes.clear) void entries.clear();
      for (const id of changes.remove ?? []) void entries.delete(id);
      for (const { id, json } of changes.put ?? []) void entries.put(json, id);
      for (const id of changes.outboxRemove ?? []) void outbox.delete(id);
      for (const { id, json } of changes.outboxPut ?? []) void outbox.put(json, id);
      for (const [key, value] of Object.entries(changes.meta ?? {})) void meta.put(value, key);
      await tx.done;
    },
    async close(): Promise<void> {
      if (db) (await db).close();
      db = null;
    },
  };
}
