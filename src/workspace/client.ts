/**
 * `createClient`: a workspace bound to a document that lives somewhere: persisted in a Cellar
 * database (`{ kv }`: memory, a SQLite file, PostgreSQL) or synced with a Cellar server
 * (`{ url }`).
 */
import type * as Y from "yjs";
import type { Kv } from "../core/kv.js";
import { describe, fail } from "../errors.js";
import type { AnyWorkspace } from "./define.js";
import { type BindOptions, type BoundWorkspace, bindWorkspace } from "./doc.js";
import { openPersistedDoc, type PersistOptions } from "./persist.js";
import { connectDoc } from "./remote.js";

/** Where a client's document lives. */
export type ClientOptions = BindOptions &
  (
    | {
        /**
         * The database: the root `Kv` (the document goes in namespace `workspace-{id}`) or that
         * namespace's view.
         */
        readonly kv: Kv;
        /** Compaction thresholds and the error handler of the persisted document. */
        readonly persist?: Omit<PersistOptions, "doc">;
      }
    | {
        /**
         * A Cellar server's base URL: the client syncs with `{url}/workspaces/{id}/sync`,
         * reconnecting after a network failure and sending what it edited meanwhile.
         */
        readonly url: string | URL;
        /** A token of the server (sent as `?token=`). */
        readonly token?: string;
      }
  );

/** A workspace bound to a persisted or synced document. */
export interface WorkspaceClient<D extends AnyWorkspace = AnyWorkspace> extends BoundWorkspace<D> {
  /** The workspace's id. */
  readonly id: D["id"];
  /**
   * Resolves once the document holds what its source held: at once for `{ kv }` (the document
   * is loaded before `createClient` resolves), after the first sync for `{ url }`, which rejects
   * with the server's refusal (`UNAUTHORIZED`, `NOT_FOUND`…). Edits made before work offline.
   */
  readonly whenSynced: Promise<void>;
  /**
   * Resolves once every change made so far is durable: committed to the database, or, with
   * `{ url }`, committed by the server (waiting for a connection if there is none).
   */
  flush(): Promise<void>;
  /** Writes what is pending, stops persisting or syncing, and destroys the document. */
  close(): Promise<void>;
}

/** The namespace a workspace's document lives in. */
export const workspaceNamespace = (id: string): string => `workspace-${id}`;

/**
 * Opens a client of `definition`: with `{ kv }` its document is loaded from the database and
 * every change is committed there (updates other processes commit arrive through the change
 * feed); with `{ url, token }` it syncs with a Cellar server over WebSocket, and resolves at
 * once (await `whenSynced` for the server's state).
 *
 * @example
 * const client = await createClient(app, { kv });
 * client.$kv.theme.set("dark");
 * await client.actions.setTheme({ theme: "light" });
 * await client.close();
 */
export async function createClient<D extends AnyWorkspace>(
  definition: D,
  options: ClientOptions,
): Promise<WorkspaceClient<D>> {
  if (typeof options !== "object" || options === null) {
    fail(
      "INVALID_ARGUMENT",
      `createClient takes { kv } or { url, token? }, got ${describe(options)}`,
    );
  }
  if ("kv" in options) return persistedClient(definition, options.kv, options);
  if ("url" in options) return syncedClient(definition, options);
  fail("INVALID_ARGUMENT", "createClient takes { kv } or { url, token? }");
}

function syncedClient<D extends AnyWorkspace>(
  definition: D,
  options: BindOptions & { readonly url: string | URL; readonly token?: string },
): WorkspaceClient<D> {
  const remote = connectDoc(
    options.url,
    definition.id,
    options.token === undefined ? {} : { token: options.token },
  );
  const bound = bindWorkspace(definition, remote.doc, options);
  return Object.freeze({
    ...bound,
    id: definition.id,
    whenSynced: remote.whenSynced,
    flush: () => remote.flush(),
    close: async () => {
      try {
        await remote.close();
      } finally {
        remote.doc.destroy();
      }
    },
  });
}

async function persistedClient<D extends AnyWorkspace>(
  definition: D,
  kv: Kv,
  options: BindOptions & { readonly persist?: Omit<PersistOptions, "doc"> },
): Promise<WorkspaceClient<D>> {
  const namespace = workspaceNamespace(definition.id);
  let view: Kv;
  if (kv.namespaceName === namespace) view = kv;
  else if (kv.namespaceName === "") view = kv.namespace(namespace);
  else {
    fail(
      "INVALID_ARGUMENT",
      `workspace ${JSON.stringify(definition.id)} lives in namespace ${JSON.stringify(namespace)}: give createClient the root Kv or that namespace, not namespace ${JSON.stringify(kv.namespaceName)}`,
    );
  }
  const stored = await openPersistedDoc(view, options.persist ?? {});
  const bound = bindWorkspace(definition, stored.doc, options);
  return Object.freeze({
    ...bound,
    id: definition.id,
    whenSynced: Promise.resolve(),
    flush: () => stored.flush(),
    close: async () => {
      try {
        await stored.close();
      } finally {
        (stored.doc as Y.Doc).destroy();
      }
    },
  });
}
