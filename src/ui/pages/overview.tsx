/** Overview: entries, size, commits per second, queues and subscribers, from `/api/metrics`. */
import { useEffect, useRef, useState } from "react";
import { ApiError, api } from "../api.js";
import { ErrorBox, formatBytes, Link, Loading } from "../components.js";
import { href } from "../router.js";
import { useAsync } from "../use-async.js";

type Metric = { name: string; values: { value: number; labels: Record<string, string> }[] };

const POLL_MS = 2000;
const HISTORY = 60;

interface Snapshot {
  at: number;
  entries: number | undefined;
  bytes: number | undefined;
  head: number;
  ops: number;
  errors: number;
  watchers: number;
  subscribers: Record<string, number>;
  streams: number;
  queues: { namespace: string; queue: string; states: Record<string, number> }[];
}

const sum = (
  metric: Metric | undefined,
  keep: (labels: Record<string, string>) => boolean = () => true,
) => (metric?.values ?? []).filter((v) => keep(v.labels)).reduce((total, v) => total + v.value, 0);

function snapshotOf(metrics: Metric[]): Snapshot {
  const byName = new Map(metrics.map((m) => [m.name, m]));
  const queues = new Map<string, Snapshot["queues"][number]>();
  for (const { labels, value } of byName.get("cellar_queue_messages")?.values ?? []) {
    const id = JSON.stringify([labels.namespace, labels.queue]);
    let queue = queues.get(id);
    if (!queue) {
      queue = { namespace: labels.namespace ?? "", queue: labels.queue ?? "", states: {} };
      queues.set(id, queue);
    }
    queue.states[labels.state ?? "?"] = value;
  }
  const subscribers: Record<string, number> = {};
  for (const { labels, value } of byName.get("cellar_subscribers")?.values ?? []) {
    subscribers[labels.kind ?? "?"] = value;
  }
  const entries = byName.get("cellar_entries")?.values[0]?.value;
  const bytes = byName.get("cellar_stored_bytes")?.values[0]?.value;
  return {
    at: performance.now(),
    entries,
    bytes,
    head: byName.get("cellar_change_log_head_versionstamp")?.values[0]?.value ?? 0,
    ops: sum(byName.get("cellar_operations_total")),
    errors: sum(byName.get("cellar_errors_total")),
    watchers: byName.get("cellar_watchers")?.values[0]?.value ?? 0,
    subscribers,
    streams: byName.get("cellar_http_open_streams")?.values[0]?.value ?? 0,
    queues: [...queues.values()],
  };
}

export function Overview() {
  const [latest, setLatest] = useState<Snapshot>();
  const [error, setError] = useState<unknown>();
  const [rates, setRates] = useState<{ commits: number; ops: number }[]>([]);
  const previous = useRef<Snapshot | undefined>(undefined);

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const snapshot = snapshotOf(await api<Metric[]>("GET", "/api/metrics"));
        if (stopped) return;
        const before = previous.current;
        if (before) {
          const seconds = (snapshot.at - before.at) / 1000;
          const rate = {
            commits: Math.max(0, snapshot.head - before.head) / seconds,
            ops: Math.max(0, snapshot.ops - before.ops) / seconds,
          };
          setRates((list) => [...list.slice(-(HISTORY - 1)), rate]);
        }
        previous.current = snapshot;
        setLatest(snapshot);
        setError(undefined);
      } catch (caught) {
        if (!stopped) setError(caught);
        // Asking again will not change the token's rights.
        if (caught instanceof ApiError && (caught.status === 401 || caught.status === 403)) return;
      }
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);

  const rate = rates.at(-1);
  return (
    <section>
      <h1>Overview</h1>
      {error !== undefined && <ErrorBox error={error} />}
      {error instanceof ApiError && error.code === "FORBIDDEN" && <NamespaceOverview />}
      {!latest && error === undefined && <Loading what="Reading metrics" />}
      {latest && (
        <>
          <div className="cards">
            <Card
              label="Entries"
              value={latest.entries?.toLocaleString("en") ?? "—"}
              id="entries"
            />
            <Card
              label="Stored size"
              value={latest.bytes === undefined ? "—" : formatBytes(latest.bytes)}
              id="size"
            />
            <Card label="Commits/s" value={rate ? rate.commits.toFixed(1) : "…"} id="commits">
              <Sparkline values={rates.map((r) => r.commits)} />
            </Card>
            <Card label="Operations/s" value={rate ? rate.ops.toFixed(1) : "…"} id="ops">
              <Sparkline values={rates.map((r) => r.ops)} />
            </Card>
            <Card label="Last commit" value={String(latest.head)} id="head" />
            <Card label="Errors" value={latest.errors.toLocaleString("en")} id="errors" />
          </div>
          <h2>Subscribers</h2>
          <table className="grid compact" aria-label="Subscribers">
            <tbody>
              <tr>
                <th scope="row">Key watchers</th>
                <td>{latest.watchers}</td>
              </tr>
              {Object.entries(latest.subscribers).map(([kind, count]) => (
                <tr key={kind}>
                  <th scope="row">Subscriptions ({kind})</th>
                  <td>{count}</td>
                </tr>
              ))}
              <tr>
                <th scope="row">Open HTTP streams</th>
                <td>{latest.streams}</td>
              </tr>
            </tbody>
          </table>
          <h2>Queues</h2>
          {latest.queues.length === 0 ? (
            <p className="muted">No queue holds a message.</p>
          ) : (
            <table className="grid" aria-label="Queues">
              <thead>
                <tr>
                  <th>Namespace</th>
                  <th>Queue</th>
                  <th>Pending</th>
                  <th>Delayed</th>
                  <th>In flight</th>
                  <th>Dead</th>
                </tr>
              </thead>
              <tbody>
                {latest.queues.map((q) => (
                  <tr key={`${q.namespace}/${q.queue}`}>
                    <td>
                      {q.namespace === "" ? <span className="muted">(default)</span> : q.namespace}
                    </td>
                    <td>
                      <Link
                        href={href("/queues", { queue: q.queue, ns: q.namespace || undefined })}
                      >
                        {q.queue}
                      </Link>
                    </td>
                    <td>{q.states.pending ?? 0}</td>
                    <td>{q.states.delayed ?? 0}</td>
                    <td>{q.states.in_flight ?? 0}</td>
                    <td>{q.states.dead ?? 0}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}

function Card(props: { label: string; value: string; id: string; children?: React.ReactNode }) {
  return (
    <div className="card" data-metric={props.id}>
      <div className="card-label">{props.label}</div>
      <div className="card-value">{props.value}</div>
      {props.children}
    </div>
  );
}

function Sparkline({ values }: { values: number[] }) {
  if (values.length < 2) return null;
  const max = Math.max(1, ...values);
  const points = values
    .map((v, i) => `${(i / (values.length - 1)) * 100},${30 - (v / max) * 28}`)
    .join(" ");
  return (
    <svg className="spark" viewBox="0 0 100 30" preserveAspectRatio="none" aria-hidden="true">
      <polyline points={points} />
    </svg>
  );
}

/**
 * What a token without the metrics (they span every namespace) may see: its namespaces' entries
 * and sizes, and the queues of the one it works in.
 */
function NamespaceOverview() {
  const stats = useAsync(
    () =>
      api<{
        entries: number;
        bytes: number;
        namespaces: { name: string; entries: number; bytes: number }[];
      }>("GET", "/api/stats"),
    [],
  );
  const queues = useAsync(
    () =>
      api<{
        queues: {
          name: string;
          pending: number;
          delayed: number;
          inFlight: number;
          dead: number;
        }[];
      }>("GET", "/api/queues"),
    [],
  );
  return (
    <>
      <p className="muted">The metrics span every namespace; here is what this token may see.</p>
      {stats.error !== undefined && <ErrorBox error={stats.error} />}
      {stats.data && (
        <div className="cards">
          <Card label="Entries" value={stats.data.entries.toLocaleString("en")} id="entries" />
          <Card label="Stored size" value={formatBytes(stats.data.bytes)} id="size" />
          <Card label="Namespaces" value={String(stats.data.namespaces.length)} id="namespaces" />
        </div>
      )}
      <h2>Queues of this namespace</h2>
      {queues.error !== undefined && <ErrorBox error={queues.error} />}
      {queues.data && queues.data.queues.length === 0 && (
        <p className="muted">No queue holds a message.</p>
      )}
      {queues.data && queues.data.queues.length > 0 && (
        <table className="grid" aria-label="Queues">
          <thead>
            <tr>
              <th>Queue</th>
              <th>Pending</th>
              <th>Delayed</th>
              <th>In flight</th>
              <th>Dead</th>
            </tr>
          </thead>
          <tbody>
            {queues.data.queues.map((q) => (
              <tr key={q.name}>
                <td>
                  <Link href={href("/queues", { queue: q.name })}>{q.name}</Link>
                </td>
                <td>{q.pending}</td>
                <td>{q.delayed}</td>
                <td>{q.inFlight}</td>
                <td>{q.dead}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
