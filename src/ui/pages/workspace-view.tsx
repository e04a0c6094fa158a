/** A workspace's KV values with their schemas, written through its routes, and its tables. */
import { type FormEvent, useState } from "react";
import { api } from "../api.js";
import { ErrorBox, Issues, Loading } from "../components.js";
import { useAsync } from "../use-async.js";
import type { Catalog } from "./typed.js";

export function WorkspaceView({ workspace }: { workspace: Catalog["workspaces"][number] }) {
  const base = `/workspaces/${encodeURIComponent(workspace.id)}`;
  const values = useAsync(
    () =>
      api<{ data: Record<string, unknown> }>("GET", `${base}/kv`, undefined, { namespace: false }),
    [base],
  );
  const [editing, setEditing] = useState<{ name: string; text: string } | null>(null);
  const [error, setError] = useState<unknown>();
  const save = async (event: FormEvent) => {
    event.preventDefault();
    if (!editing) return;
    setError(undefined);
    try {
      const value = JSON.parse(editing.text) as unknown;
      await api(
        "PUT",
        `${base}/kv/${encodeURIComponent(editing.name)}`,
        { value },
        { namespace: false },
      );
      setEditing(null);
      values.reload();
    } catch (caught) {
      setError(caught instanceof SyntaxError ? new Error(`not JSON: ${caught.message}`) : caught);
    }
  };
  return (
    <>
      <h2>
        Workspace <code>{workspace.id}</code>{" "}
        <span className="muted">(namespace workspace-{workspace.id})</span>
      </h2>
      {values.error !== undefined && <ErrorBox error={values.error} />}
      {!values.data && values.error === undefined && <Loading />}
      {values.data && (
        <table className="grid" aria-label={`Values of ${workspace.id}`}>
          <thead>
            <tr>
              <th>Key</th>
              <th>Value</th>
              <th>Schema</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {workspace.keys.map(({ name, schema }) => (
              <tr key={name}>
                <td>
                  <code>{name}</code>
                </td>
                <td className="mono">
                  {editing?.name === name ? (
                    <form onSubmit={save}>
                      <textarea
                        className="editor"
                        aria-label={`Value of ${name}`}
                        rows={4}
                        value={editing.text}
                        onChange={(e) => setEditing({ name, text: e.target.value })}
                      />
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
                  ) : (
                    JSON.stringify(values.data?.data[name] ?? null)
                  )}
                </td>
                <td className="value-preview mono">{JSON.stringify(schema ?? {})}</td>
                <td>
                  <button
                    type="button"
                    className="small"
                    onClick={() => {
                      setError(undefined);
                      setEditing({
                        name,
                        text: JSON.stringify(values.data?.data[name] ?? null, null, 2),
                      });
                    }}
                  >
                    Edit
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {workspace.tables.map((table) => (
        <WorkspaceTable key={table} base={base} table={table} />
      ))}
    </>
  );
}

function WorkspaceTable({ base, table }: { base: string; table: string }) {
  const rows = useAsync(
    () =>
      api<{ data: Record<string, unknown> | unknown[] }>(
        "GET",
        `${base}/tables/${encodeURIComponent(table)}`,
        undefined,
        {
          namespace: false,
        },
      ),
    [base, table],
  );
  const list = rows.data
    ? Array.isArray(rows.data.data)
      ? rows.data.data
      : Object.values(rows.data.data)
    : [];
  return (
    <>
      <h2>
        Table <code>{table}</code>
      </h2>
      {rows.error !== undefined && <ErrorBox error={rows.error} />}
      {rows.data && list.length === 0 && <p className="muted">No rows.</p>}
      {list.length > 0 && (
        <pre className="value" data-testid={`rows-${table}`}>
          {JSON.stringify(list, null, 2)}
        </pre>
      )}
    </>
  );
}
