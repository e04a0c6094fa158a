/**
 * A live watch of the keys a pattern matches (`users/+/settings`, `orders/#`): the events stream
 * (`GET /api/events`), read with fetch so the token stays in a header. The newest event is on top.
 */
import { type FormEvent, useEffect, useState } from "react";
import { type Entry, type JsonKey, openStream } from "../api.js";
import { ErrorBox, KeyParts, Link } from "../components.js";
import { jsonPathOf, toParts } from "../keys.js";
import { href, navigate, useRoute } from "../router.js";

/** Events the page keeps; older ones drop off the bottom. */
const KEEP = 500;

interface KvEvent {
  type: "set" | "delete" | "expire";
  key: JsonKey;
  versionstamp: string;
  entry: Entry | null;
  previous: Entry | null;
}

type Status = "connecting" | "live" | "stopped";

const preview = (entry: Entry | null | undefined) => {
  if (!entry) return "—";
  const text = JSON.stringify(entry.value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
};

export function Watch() {
  const { params } = useRoute();
  const pattern = params.get("pattern") ?? "";
  const [draft, setDraft] = useState(pattern || "#");
  const [events, setEvents] = useState<KvEvent[]>([]);
  const [status, setStatus] = useState<Status>("stopped");
  const [error, setError] = useState<unknown>();
  const [last, setLast] = useState<string>();

  useEffect(() => setDraft(pattern || "#"), [pattern]);

  useEffect(() => {
    if (!pattern) return;
    let close: (() => void) | undefined;
    let stopped = false;
    setEvents([]);
    setError(undefined);
    setStatus("connecting");
    // The pattern is a key path whose own escapes (`%2F` in a part) go as typed: only what
    // would end or split the query is escaped (`#` is REST, sent as %23).
    const query = pattern.replace(/[#&?\s]/g, (c) => encodeURIComponent(c));
    openStream(
      `/api/events?pattern=${query}`,
      (type, data) => {
        if (type === "set" || type === "delete" || type === "expire") {
          const event = JSON.parse(data) as KvEvent;
          setEvents((list) => [event, ...list].slice(0, KEEP));
          setLast(event.versionstamp);
        } else if (type === "progress") {
          setLast(data);
        } else if (type === "error") {
          setError(JSON.parse(data).error);
        }
      },
      (endError) => {
        if (stopped) return;
        setStatus("stopped");
        if (endError) setError(endError);
      },
    ).then(
      (stop) => {
        if (stopped) stop();
        else {
          close = stop;
          setStatus("live");
        }
      },
      (openError: unknown) => {
        if (stopped) return;
        setStatus("stopped");
        setError(openError);
      },
    );
    return () => {
      stopped = true;
      close?.();
    };
  }, [pattern]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    navigate(href("/watch", { pattern: draft.trim() }));
  };

  return (
    <section>
      <h1>Watch</h1>
      <form className="toolbar" onSubmit={submit} aria-label="Watch a pattern">
        <label>
          <span>
            Pattern (key path; <code>+</code> one part, <code>#</code> the rest)
          </span>
          <input
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            data-shortcut="filter"
            size={36}
            placeholder="users/+/settings"
          />
        </label>
        <button type="submit" className="primary">
          Watch
        </button>
        {pattern && (
          <button type="button" onClick={() => navigate(href("/watch"))}>
            Stop
          </button>
        )}
        <button type="button" disabled={events.length === 0} onClick={() => setEvents([])}>
          Clear
        </button>
        <span className="muted" role="status" data-testid="watch-status">
          {pattern ? status : "not watching"}
          {last && ` · up to ${last}`}
        </span>
      </form>
      {error !== undefined && <ErrorBox error={error} />}
      {pattern && events.length === 0 && status === "live" && (
        <p className="muted">Waiting for a change to a key that matches {pattern}…</p>
      )}
      <ul className="events" aria-label="Events">
        {events.map((event) => (
          <li key={`${event.versionstamp} ${jsonPathOf(event.key)}`}>
            <span className={`ev-type ev-${event.type}`}>{event.type}</span>
            <Link href={href("/entry", { key: jsonPathOf(event.key) })}>
              <KeyParts parts={toParts(event.key)} />
            </Link>
            <span className="value-preview mono">
              {preview(event.previous)} → {preview(event.entry)}
            </span>
            <span className="muted mono">{event.versionstamp}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
