/**
 * The client store in a browser: a storage name is an IndexedDB database, the socket is the
 * page's `WebSocket`, and the page's `online`/`offline` events drop and reopen it at once.
 */
import { fail } from "../errors.js";
import { type ClientKv, openClientKv } from "./client-kv.js";
import { indexedDbStorage } from "./storage/indexeddb.js";
import type { ClientKvOptions, WebSocketLike } from "./types.js";

/**
 * Opens a client store: a replica of `prefixes` of one namespace of the Cellar server at `url`,
 * read and written locally at once, online or not, and kept in step over WebSocket.
 *
 * @example
 * import { createClientKv } from "cellar/client";
 * const kv = await createClientKv({ url: "https://kv.example.com", token, prefixes: [["todos"]], storage: "my-app" });
 * await kv.set(["todos", 1], { title: "milk" }); // shown at once, sent when online
 */
export function createClientKv(options: ClientKvOptions): Promise<ClientKv> {
  return openClientKv(options, {
    storage: indexedDbStorage,
    webSocket: () =>
      (globalThis as { WebSocket?: WebSocketLike }).WebSocket ??
      fail("UNSUPPORTED", "this runtime has no WebSocket; pass the WebSocket option"),
    online: () => (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine !== false,
    connectivity: (listener) => {
      const target = globalThis as unknown as Partial<EventTarget>;
      if (typeof target.addEventListener !== "function") return () => {};
      const online = () => listener(true);
      const offline = () => listener(false);
      target.addEventListener("online", online);
      target.addEventListener("offline", offline);
      return () => {
        target.removeEventListener?.("online", online);
        target.removeEventListener?.("offline", offline);
      };
    },
  });
}
