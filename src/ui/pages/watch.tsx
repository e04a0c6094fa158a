/**
 * A live watch of the keys a pattern matches (`users/+/settings`, `orders/#`): the events stream
 * (`GET /api/events`), read with fetch so the token stays in a header. The newest event is on top.
 */
import { type FormEvent, useEffect, useRef, useState } from "react";
import { ApiError, type Entry, type JsonKey, openStream } from "../api.js";
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

  // Where a stream that ended resumes: the last whole commit (an event's id) or progress mark.
  const resumeFrom = useRef<string | undefined>(undefined);
  const [attempt, setAttempt] = useState(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new pattern starts afresh
  useEffect(() => {
    resumeFrom.current = undefined;
    setEvents([]);
    setLast(undefined);
  }, [pattern]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `attempt` reconnects
  useEffect(() => {
    if (!pattern) return;
    let close: (() => void) | undefined;
    let stopped = false;
    let failed = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    setError(undefined);
    setStatus("connecting");
    // The pattern is a key path whose own escapes (`%2F` in a part) go as typed: only what
    // would end or split the query is escaped (`#` is REST, sent as %23).
    const query = pattern.replace(/[#&?\s]/g, (c) => encodeURIComponent(c));
    const since = resumeFrom.current ? `&since=${resumeFrom.current}` : "";
    openStream(
      `/api/events?pattern=${query}${since}`,
      (type, data, id) => {
        if (type === "set" || type === "delete" || type === "expire") {
          const event = JSON.parse(data) as KvEvent;
          setEvents((list) => [event, ...list].slice(0, KEEP));
          setLast(event.versionstamp);
          if (id) resumeFrom.current = id;
        } else if (type === "progress") {
          setLast(data);
          resumeFrom.current = data;
        } else if (type === "error") {
          failed = true;
          const { code, message } = (
            JSON.parse(data) as { error: { code: string; message: string } }
          ).error;
          setError(new ApiError(0, code, message));
        }
      },
      (endError) => {
        if (stopped) return;
        setStatus("stopped");
        if (endError) setError(endError);
        // A stream the server ended (a restart, a slow reader) resumes where it stopped.
        else if (!failed) retry = setTimeout(() => setAttempt((n) => n + 1), 1000);
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
      clearTimeout(retry);
      close?.();
    };
  }, [pattern, attempt]);

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
