/**
 * Namespaces and access: what the token may do, the namespaces it may see (with their entry
 * counts), and a switch to work in one of them.
 */
import { useContext, useState } from "react";
import { api } from "../api.js";
import { ErrorBox, formatBytes, Link, Loading, SessionContext } from "../components.js";
import { href } from "../router.js";
import { useAsync } from "../use-async.js";

interface NamespaceInfo {
  name: string;
  entries: number;
  reserved?: boolean;
}

const CAN: [string, "read" | "write" | "admin"][] = [
  ["Read entries, lists, history, search, metrics of its namespaces", "read"],
  ["Watch keys and events", "read"],
  ["Write, delete, set expiry, atomic commits", "write"],
  ["Enqueue, dequeue, requeue and purge dead messages", "write"],
  ["Create and drop indexes, drop a whole namespace", "admin"],
];
const RANK = { read: 0, write: 1, admin: 2 };

export function Access() {
  const session = useContext(SessionContext);
  const [after, setAfter] = useState<string[]>([]);
  const cursor = after.at(-1);
  const namespaces = useAsync(
    () =>
      api<{ namespaces: NamespaceInfo[]; next: string | null }>(
        "GET",
        `/api/namespaces?limit=100${cursor === undefined ? "" : `&after=${encodeURIComponent(cursor)}`}`,
      ),
    [cursor],
  );
  const [sizes, setSizes] = useState<Map<string, number>>();
  const [sizeError, setSizeError] = useState<unknown>();
  const measure = async () => {
    setSizeError(undefined);
    try {
      const stats = await api<{ namespaces: { name: string; bytes: number }[] }>(
        "GET",
        "/api/stats",
      );
      setSizes(new Map(stats.namespaces.map((n) => [n.name, n.bytes])));
    } catch (error) {
      setSizeError(error);
    }
  };
  if (!session) return <Loading />;
  return (
    <section>
      <h1>Namespaces &amp; access</h1>
      <h2>This token</h2>
      <dl className="meta" aria-label="Token">
        <dt>Tokens</dt>
        <dd>
          {session.tokens
            ? "checked by the server"
            : "off: every request is an admin (loopback only)"}
        </dd>
        <dt>Name</dt>
        <dd>{session.name ?? "—"}</dd>
        <dt>Access</dt>
        <dd data-testid="access">{session.access}</dd>
        <dt>Namespaces</dt>
        <dd>
          {session.namespaces
            .map((n) => (n === "*" ? "any" : n === "" ? "(default)" : n))
            .join(", ")}
        </dd>
        <dt>Working in</dt>
        <dd>{session.namespace === "" ? "(default)" : session.namespace}</dd>
      </dl>
      <table className="grid compact" aria-label="What this token may do">
        <tbody>
          {CAN.map(([what, needs]) => (
            <tr key={what}>
              <td>{RANK[session.access] >= RANK[needs] ? "✓" : "✗"}</td>
              <td>{what}</td>
              <td className="muted">{needs}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Namespaces</h2>
      <div className="row">
        <button type="button" onClick={measure}>
          Measure sizes
        </button>
        <span className="muted">reads every entry: for administration, not for every visit</span>
      </div>
      {sizeError !== undefined && <ErrorBox error={sizeError} />}
      {namespaces.error !== undefined && (
        <ErrorBox error={namespaces.error} onRetry={namespaces.reload} />
      )}
      {!namespaces.data && namespaces.error === undefined && <Loading what="Listing namespaces" />}
      {namespaces.data && (
        <table className="grid" aria-label="Namespaces">
          <thead>
            <tr>
              <th>Namespace</th>
              <th>Entries</th>
              <th>Size</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {namespaces.data.namespaces.map((n) => (
              <tr key={n.name}>
                <td>
                  {n.name === "" ? <span className="muted">(default)</span> : <code>{n.name}</code>}
                  {n.reserved && <span className="kind">Cellar's own</span>}
                </td>
                <td>{n.entries.toLocaleString("en")}</td>
                <td>{sizes?.has(n.name) ? formatBytes(sizes.get(n.name)!) : "—"}</td>
                <td>
                  {!n.reserved && <Link href={href("/keys", { ns: n.name })}>Open keys</Link>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="row">
        {after.length > 0 && (
          <button type="button" onClick={() => setAfter(after.slice(0, -1))}>
            Previous
          </button>
        )}
        {namespaces.data?.next && (
          <button type="button" onClick={() => setAfter([...after, namespaces.data!.next!])}>
            Next
          </button>
        )}
      </div>
    </section>
  );
}
