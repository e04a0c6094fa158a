/**
 * A client store's storage in memory: nothing survives the process or the page. The default
 * when no storage is named.
 */
import type { ClientStorage, StorageChanges, StoredState } from "../types.js";

/**
 * @example
 * const kv = await createClientKv({ url, storage: memoryStorage() });
 */
export function memoryStorage(): ClientStorage {
  const entries = new Map<string, string>();
  const outbox = new Map<number, string>();
  const meta: Record<string, string> = {};
  return {
    async load(): Promise<StoredState> {
      return {
        entries: [...entries].map(([id, json]) => ({ id, json })),
        outbox: [...outbox].sort(([a], [b]) => a - b).map(([id, json]) => ({ id, json })),
        meta: { ...meta },
      };
    },
    async save(changes: StorageChanges): Promise<void> {
      if (changes.clear) entries.clear();
      for (const id of changes.remove ?? []) entries.delete(id);
      for (const { id, json } of changes.put ?? []) entries.set(id, json);
      for (const id of changes.outboxRemove ?? []) outbox.delete(id);
      for (const { id, json } of changes.outboxPut ?? []) outbox.set(id, json);
      Object.assign(meta, changes.meta);
    },
    async close(): Promise<void> {},
  };
}
