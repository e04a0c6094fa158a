/**
 * Typed stores and workspaces the server serves, found in its OpenAPI document: each store's
 * schema and entries, each workspace's KV values (with their schemas) and tables. Writes go
 * through their own routes, so the server validates them and answers a bad value with its issues.
 */
import { type FormEvent, useState } from "react";
import { api } from "../api.js";
import { Confirm, ErrorBox, Issues, Link, Loading } from "../components.js";
import { href, useRoute } from "../router.js";
import { useAsync } from "../use-async.js";
import { WorkspaceView } from "./workspace-view.js";

type Schema = Record<string, unknown>;
type Operation = {
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
};
type OpenApi = {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
};

export interface Catalog {
  stores: { name: string; schema: Schema | undefined }[];
  workspaces: {
    id: string;
    keys: { name: string; schema: Schema | undefined }[];
    tables: string[];
  }[];
}

/** Follows `$ref`s into the document's components. */
function resolve(document: OpenApi, schema: Schema | undefined): Schema | undefined {
  const ref = schema?.$ref;
  if (typeof ref !== "string") return schema;
  return document.components?.schemas?.[ref.replace("#/components/schemas/", "")];
}

const jsonSchemaOf = (operation: Operation | undefined) =>
  operation?.requestBody?.content?.["application/json"]?.schema;

function catalogOf(document: OpenApi): Catalog {
  const stores: Catalog["stores"] = [];
  const workspaces = new Map<string, Catalog["workspaces"][number]>();
  const workspace = (id: string) => {
    let found = workspaces.get(id);
    if (!found) {
      found = { id, keys: [], tables: [] };
      workspaces.set(id, found);
    }
    return found;
  };
  for (const [path, operations] of Object.entries(document.paths)) {
    const store = /^\/api\/stores\/([^/{}]+)$/.exec(path)?.[1];
    if (store) {
      const body = jsonSchemaOf(document.paths[`${path}/{id}`]?.put);
      const value = (resolve(document, body)?.properties as Record<string, Schema> | undefined)
        ?.value;
      stores.push({ name: decodeURIComponent(store), schema: resolve(document, value) });
      continue;
    }
    const kv = /^\/workspaces\/([^/{}]+)\/kv\/([^/{}]+)$/.exec(path);
    if (kv) {
      const body = jsonSchemaOf(operations.put);
      const value = (resolve(document, body)?.properties as Record<string, Schema> | undefined)
        ?.value;
      workspace(kv[1]!).keys.push({ name: kv[2]!, schema: resolve(document, value) });
      continue;
    }
    const table = /^\/workspaces\/([^/{}]+)\/tables\/([^/{}]+)$/.exec(path);
    if (table) workspace(table[1]!).tables.push(table[2]!);
  }
  return { stores, workspaces: [...workspaces.values()] };
}

export function Typed() {
  const { params } = useRoute();
  const store = params.get("store");
  const workspace = params.get("workspace");
  const catalog = useAsync(
    async () => catalogOf(await api<OpenApi>("GET", "/api/openapi.json")),
    [],
  );
  if (catalog.error !== undefined)
    return <ErrorBox error={catalog.error} onRetry={catalog.reload} />;
  if (!catalog.data) return <Loading what="Reading the server's stores and workspaces" />;
  const { stores, workspaces } = catalog.data;
  const openStore = stores.find((s) => s.name === store);
  const openWorkspace = workspaces.find((w) => w.id === workspace);
  return (
    <section>
      <h1>Typed stores &amp; workspaces</h1>
      <div className="split">
        <div>
          <h2>Stores</h2>
          {stores.length === 0 ? (
            <p className="muted">
              The server serves no typed store (<code>startServer({"{ stores }"})</code>).
            </p>
          ) : (
            <ul>
              {stores.map((s) => (
                <li key={s.name}>
                  <Link
                    href={href("/typed", { store: s.name })}
                    aria-current={s.name === store ? "page" : undefined}
                  >
                    {s.name}
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div>
          <h2>Workspaces</h2>
          {workspaces.length === 0 ? (
            <p className="muted">
              The server serves no workspace (<code>--workspaces</code>).
            </p>
          ) : (
            <ul>
              {workspaces.map((w) => (
                <li key={w.id}>
                  <Link
                    href={href("/typed", { workspace: w.id })}
                    aria-current={w.id === workspace ? "page" : undefined}
                  >
                    {w.id}
                  </Link>
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
      {openStore && <StoreView key={openStore.name} store={openStore} />}
      {openWorkspace && <WorkspaceView key={openWorkspace.id} workspace={openWorkspace} />}
    </section>
  );
}

function StoreView({ store }: { store: Catalog["stores"][number] }) {
  const base = `/api/stores/${encodeURIComponent(store.name)}`;
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const page = useAsync(
    () =>
      api<{
        entries: { id: string; value: unknown; versionstamp: string }[];
        cursor: string | null;
      }>("GET", `${base}?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`),
    [base, cursor],
  );
  const [editing, setEditing] = useState<{ id: string; text: string } | null>(null);
  const [error, setError] = useState<unknown>();
  const [deleting, setDeleting] = useState<string | null>(null);
  const save = async (event: FormEvent) => {
    event.preventDefault();
    if (!editing) return;
    setError(undefined);
    try {
      const value = JSON.parse(editing.text) as unknown;
      await api("PUT", `${base}/${encodeURIComponent(editing.id)}`, { value });
      setEditing(null);
      page.reload();
    } catch (caught) {
      setError(caught instanceof SyntaxError ? new Error(`not JSON: ${caught.message}`) : caught);
    }
  };
  return (
    <>
      <h2>
        Store <code>{store.name}</code>
      </h2>
      <details>
        <summary>Schema</summary>
        <pre className="value" data-testid="schema">
          {JSON.stringify(store.schema ?? "(none published)", null, 2)}
        </pre>
      </details>
      <div className="row">
        <button type="button" onClick={() => setEditing({ id: "", text: "{}" })}>
          New entry
        </button>
      </div>
      {editing && (
        <form onSubmit={save} className="store-editor">
          <label>
            Id
            <input
              value={editing.id}
              onChange={(e) => setEditing({ ...editing, id: e.target.value })}
              required
            />
          </label>
          <label className="block">
            <span>Value (JSON, checked by the store's schema on the server)</span>
            <textarea
              className="editor"
              aria-label="Store value"
              rows={8}
              value={editing.text}
              onChange={(e) => setEditing({ ...editing, text: e.target.value })}
            />
          </label>
          {error !== undefined && <Issues error={error} />}
          <div className="row">
            <button type="submit" className="primary">
              Save
            </button>
            <button type="button" onClick={() => setEditing(null)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {page.error !== undefined && <ErrorBox error={page.error} />}
      {!page.data && page.error === undefined && <Loading />}
      {page.data && (
        <table className="grid" aria-label={`Entries of ${store.name}`}>
          <thead>
            <tr>
              <th>Id</th>
              <th>Value</th>
              <th>Versionstamp</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {page.data.entries.map((entry) => (
              <tr key={entry.id}>
                <td>
                  <code>{entry.id}</code>
                </td>
                <td className="value-preview mono">{JSON.stringify(entry.value)}</td>
                <td className="mono">{entry.versionstamp}</td>
                <td>
                  <div className="row">
                    <button
                      type="button"
                      className="small"
                      onClick={() =>
                        setEditing({ id: entry.id, text: JSON.stringify(entry.value, null, 2) })
                      }
                    >
                      Edit
                    </button>
                    <button
                      type="button"
                      className="small danger"
                      onClick={() => setDeleting(entry.id)}
                    >
                      Delete…
                    </button>
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="row">
        {cursors.length > 0 && (
          <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
            Previous
          </button>
        )}
        {page.data?.cursor && (
          <button type="button" onClick={() => setCursors([...cursors, page.data!.cursor!])}>
            Next
          </button>
        )}
      </div>
      {deleting !== null && (
        <Confirm
          title={`Delete ${deleting} from ${store.name}?`}
          action="Delete"
          onCancel={() => setDeleting(null)}
          onConfirm={() => {
            const id = deleting;
            setDeleting(null);
            api("DELETE", `${base}/${encodeURIComponent(id)}`).then(page.reload, setError);
          }}
        >
          The entry is deleted.
        </Confirm>
      )}
    </>
  );
}
