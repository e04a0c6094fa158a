/**
 * Queues of the namespace with their stats, and each queue's dead-letter queue: inspect a dead
 * message, requeue one or all, delete one, purge. Destructive actions ask first.
 */
import { useState } from "react";
import { api } from "../api.js";
import { Confirm, ErrorBox, formatTime, Link, Loading } from "../components.js";
import { href, useRoute } from "../router.js";
import { useAsync } from "../use-async.js";

const DLQ_PAGE = 100;

interface QueueInfo {
  name: string;
  pending: number;
  delayed: number;
  inFlight: number;
  dead: number;
  nextAt: number | null;
}

interface DeadMessage {
  id: string;
  value: unknown;
  priority: number;
  attempts: number;
  enqueuedAt: number;
  failedAt: number;
  error: string | null;
}

const queuePath = (name: string) => `/api/queues/${encodeURIComponent(name)}`;

export function Queues() {
  const { params } = useRoute();
  const selected = params.get("queue") ?? "";
  const queues = useAsync(() => api<{ queues: QueueInfo[] }>("GET", "/api/queues"), [selected]);
  return (
    <section>
      <h1>Queues</h1>
      {queues.error !== undefined && <ErrorBox error={queues.error} onRetry={queues.reload} />}
      {!queues.data && queues.error === undefined && <Loading what="Reading queues" />}
      {queues.data && queues.data.queues.length === 0 && (
        <p className="muted">No queue of this namespace holds a message.</p>
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
              <th>Next due</th>
            </tr>
          </thead>
          <tbody>
            {queues.data.queues.map((q) => (
              <tr key={q.name} aria-selected={q.name === selected}>
                <td>
                  <Link href={href("/queues", { queue: q.name })}>{q.name}</Link>
                </td>
                <td>{q.pending}</td>
                <td>{q.delayed}</td>
                <td>{q.inFlight}</td>
                <td>{q.dead}</td>
                <td>{formatTime(q.nextAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {selected && <DeadLetters key={selected} queue={selected} onChange={queues.reload} />}
    </section>
  );
}

type Pending = { kind: "delete"; id: string } | { kind: "purge" } | { kind: "requeue-all" } | null;

function DeadLetters({ queue, onChange }: { queue: string; onChange: () => void }) {
  const [pages, setPages] = useState(1);
  const dead = useAsync(
    () =>
      api<{ messages: DeadMessage[] }>("GET", `${queuePath(queue)}/dlq?limit=${DLQ_PAGE * pages}`),
    [queue, pages],
  );
  const [open, setOpen] = useState<string>();
  const [confirm, setConfirm] = useState<Pending>(null);
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<string>();

  const act = async (what: () => Promise<string>) => {
    setError(undefined);
    setDone(undefined);
    try {
      setDone(await what());
    } catch (caught) {
      setError(caught);
    }
    dead.reload();
    onChange();
  };
  const requeue = (id: string) =>
    act(async () => {
      await api("POST", `${queuePath(queue)}/dlq/${encodeURIComponent(id)}/requeue`);
      return `Requeued ${id}.`;
    });
  const messages = dead.data?.messages ?? [];

  return (
    <>
      <h2>
        Dead-letter queue of <code>{queue}</code>
      </h2>
      <div className="row">
        <button
          type="button"
          disabled={messages.length === 0}
          onClick={() => setConfirm({ kind: "requeue-all" })}
        >
          Requeue all…
        </button>
        <button
          type="button"
          className="danger"
          disabled={messages.length === 0}
          onClick={() => setConfirm({ kind: "purge" })}
        >
          Purge…
        </button>
        <button type="button" onClick={dead.reload}>
          Refresh
        </button>
      </div>
      {done && (
        <p className="notice" role="status">
          {done}
        </p>
      )}
      {error !== undefined && <ErrorBox error={error} />}
      {dead.error !== undefined && <ErrorBox error={dead.error} />}
      {!dead.data && dead.error === undefined && <Loading what="Reading dead messages" />}
      {dead.data && messages.length === 0 && <p className="muted">No dead message.</p>}
      {messages.length > 0 && (
        <table className="grid" aria-label="Dead messages">
          <thead>
            <tr>
              <th>Id</th>
              <th>Failed</th>
              <th>Attempts</th>
              <th>Error</th>
              <th>Value</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {messages.map((m) => (
              <tr key={m.id}>
                <td className="mono">{m.id}</td>
                <td>{formatTime(m.failedAt)}</td>
                <td>{m.attempts}</td>
                <td>{m.error ?? "—"}</td>
                <td>
                  {open === m.id ? (
                    <pre className="value">{JSON.stringify(m.value, null, 2)}</pre>
                  ) : (
                    <span className="value-preview mono">{JSON.stringify(m.value)}</span>
                  )}
                </td>
                <td>
                  <div className="row">
                    <button
                      type="button"
                      className="small"
                      onClick={() => setOpen(open === m.id ? undefined : m.id)}
                    >
                      {open === m.id ? "Hide" : "Inspect"}
                    </button>
                    <button type="button" className="small" onClick={() => requeue(m.id)}>
                      Requeue
                    </button>
                    <button
                      type="button"
                      className="small danger"
                      onClick={() => setConfirm({ kind: "delete", id: m.id })}
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
      {messages.length === DLQ_PAGE * pages && (
        <button type="button" onClick={() => setPages(pages + 1)}>
          Show more
        </button>
      )}
      {confirm?.kind === "delete" && (
        <Confirm
          title="Delete this dead message?"
          action="Delete"
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            const { id } = confirm;
            setConfirm(null);
            void act(async () => {
              await api("DELETE", `${queuePath(queue)}/dlq/${encodeURIComponent(id)}`);
              return `Deleted ${id}.`;
            });
          }}
        >
          Message <code>{confirm.id}</code> is gone for good.
        </Confirm>
      )}
      {confirm?.kind === "purge" && (
        <Confirm
          title={`Purge the dead-letter queue of ${queue}?`}
          action="Purge"
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            setConfirm(null);
            void act(async () => {
              const { count } = await api<{ count: number }>("DELETE", `${queuePath(queue)}/dlq`);
              return `Purged ${count} dead message${count === 1 ? "" : "s"}.`;
            });
          }}
        >
          Every dead message of this queue is deleted.
        </Confirm>
      )}
      {confirm?.kind === "requeue-all" && (
        <Confirm
          title={`Requeue every dead message of ${queue}?`}
          action="Requeue all"
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            setConfirm(null);
            void act(async () => {
              const { count } = await api<{ count: number }>(
                "POST",
                `${queuePath(queue)}/dlq/requeue`,
              );
              return `Requeued ${count} message${count === 1 ? "" : "s"}.`;
            });
          }}
        >
          They are delivered again, with fresh attempts.
        </Confirm>
      )}
    </>
  );
}
