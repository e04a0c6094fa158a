/**
 * The client store in Node: a storage name is a SQLite file (or `":memory:"`), the socket is
 * `ws`'s. Both load when first asked for.
 */
import { type ClientKv, openClientKv } from "./client-kv.js";
import { memoryStorage } from "./storage/memory.js";
import type { ClientKvOptions, WebSocketLike } from "./types.js";

/**
 * Opens a client store (see `ClientKvOptions`): a replica of `prefixes` of one namespace of the
 * Cellar server at `url`, read and written locally at once, online or not.
 *
 * @example
 * import { createClientKv } from "cellar";
 * const kv = await createClientKv({ url: "http://127.0.0.1:8080", token, storage: "data/replica.db" });
 * await kv.set(["todos", 1], { title: "milk" });
 */
export function createClientKv(options: ClientKvOptions): Promise<ClientKv> {
  return openClientKv(options, {
    storage: async (name) =>
      name === ":memory:"
        ? memoryStorage()
        : (await import("./storage/sqlite.js")).sqliteStorage(name),
    webSocket: async () => (await import("ws")).WebSocket as unknown as WebSocketLike,
  });
}
