/**
 * One entry: its value in a lossless JSON editor (the HTTP API's tagged JSON, checked before
 * saving), metadata, expiry and revision history with a diff. Every write is an atomic commit
 * checked against the versionstamp the page read, so a change made meanwhile is shown as a
 * conflict and never overwritten.
 */
import { type FormEvent, useEffect, useState } from "react";
import type { KvKeyPart } from "../../codec/key.js";
import { ApiError, api, type Entry, type JsonKey, type Revision } from "../api.js";
import { Confirm, ErrorBox, formatTime, KeyParts, Link, Loading } from "../components.js";
import { partsOf, pathOf, toJsonKey } from "../keys.js";
import { href, navigate, useRoute } from "../router.js";
import { useAsync } from "../use-async.js";
import { DiffView, History, pretty } from "./entry-history.js";
import { commit, isConflict, type Mutation, parseValue, ValueEditor } from "./entry-writes.js";

export function EntryView() {
  const { params } = useRoute();
  const path = params.get("key") ?? "";
  let parts: KvKeyPart[];
  try {
    parts = partsOf(path);
  } catch (error) {
    return <ErrorBox error={error} />;
  }
  if (params.get("new") === "1") return <NewEntry prefix={path} />;
  if (parts.length === 0)
    return <ErrorBox error={new Error("no key given: open an entry from Keys")} />;
  return <ExistingEntry parts={parts} path={pathOf(parts)} />;
}

function NewEntry({ prefix }: { prefix: string }) {
  const [path, setPath] = useState(prefix ? `${prefix}/` : "");
  const [text, setText] = useState('{\n  "name": "value"\n}');
  const [ttl, setTtl] = useState("");
  const [error, setError] = useState<unknown>();
  const parsed = parseValue(text);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    try {
      const parts = partsOf(path);
      if (parts.length === 0) throw new Error("the key needs at least one part");
      if (!parsed.ok) throw new Error(parsed.error);
      const key = toJsonKey(parts);
      const expireIn = ttl ? Math.round(Number(ttl) * 1000) : undefined;
      await commit(key, null, {
        type: "set",
        key,
        value: parsed.json,
        ...(expireIn && { expireIn }),
      });
      navigate(href("/entry", { key: pathOf(parts) }), true);
    } catch (caught) {
      setError(
        isConflict(caught)
          ? new ApiError(
              409,
              "CHECK_FAILED",
              "an entry with this key exists already; nothing was written",
            )
          : caught,
      );
    }
  };
  return (
    <section>
      <h1>New entry</h1>
      <form onSubmit={submit} className="new-entry">
        <div className="row">
          <label>
            Key (key path: <code>users/~n:42</code>)
            <input value={path} onChange={(e) => setPath(e.target.value)} size={40} required />
          </label>
          <label>
            Expire in (seconds, empty: never)
            <input
              value={ttl}
              onChange={(e) => setTtl(e.target.value)}
              inputMode="decimal"
              size={10}
            />
          </label>
        </div>
        <ValueEditor text={text} onChange={setText} error={parsed.ok ? undefined : parsed.error} />
        {error !== undefined && <ErrorBox error={error} />}
        <div className="row">
          <button type="submit" className="primary" disabled={!parsed.ok}>
            Create
          </button>
          <Link href={href("/keys", { prefix })}>Cancel</Link>
        </div>
      </form>
    </section>
  );
}

function ExistingEntry({ parts, path }: { parts: KvKeyPart[]; path: string }) {
  const key = toJsonKey(parts);
  const entry = useAsync(() => api<Entry>("GET", `/api/keys/${path}?metadata=true`), [path]);
  const history = useAsync(
    () => api<{ revisions: Revision[] }>("GET", `/api/history/${path}?limit=50`),
    [path, entry.data?.versionstamp],
  );
  const parent = pathOf(parts.slice(0, -1));
  // Kept here: a write re-reads the entry, which gives the editor a new versionstamp and a fresh
  // state.
  const [done, setDone] = useState<string>();

  return (
    <section>
      <p className="crumbs">
        <Link href={href("/keys", { prefix: parent })}>Keys</Link> ›{" "}
      </p>
      <h1 className="key-title">
        <KeyParts parts={parts} />
      </h1>
      {entry.error !== undefined && <ErrorBox error={entry.error} onRetry={entry.reload} />}
      {!entry.data && entry.error === undefined && <Loading what="Reading the entry" />}
      {entry.data && entry.data.versionstamp === null && (
        <div className="notice">
          No entry has this key (or it expired).{" "}
          <Link href={href("/entry", { new: "1", key: parent })}>Create one</Link>
        </div>
      )}
      {done && (
        <p className="notice" role="status">
          {done}
        </p>
      )}
      {entry.data?.versionstamp && (
        <Editor
          key={entry.data.versionstamp}
          entry={entry.data}
          jsonKey={key}
          path={path}
          parent={parent}
          reload={(message) => {
            setDone(message);
            entry.reload();
          }}
        />
      )}
      <h2>Revision history</h2>
      {history.error !== undefined && <ErrorBox error={history.error} />}
      {history.data && (
        <History
          revisions={history.data.revisions}
          current={entry.data?.versionstamp ? entry.data : undefined}
        />
      )}
    </section>
  );
}

function Editor(props: {
  entry: Entry;
  jsonKey: JsonKey;
  path: string;
  parent: string;
  /** Re-reads the entry after a write that went through, saying what it did. */
  reload: (message?: string) => void;
}) {
  const { entry, jsonKey } = props;
  const original = pretty(entry.value);
  const [text, setText] = useState(original);
  const [error, setError] = useState<unknown>();
  const [conflict, setConflict] = useState<Entry | null>(null);
  const [confirm, setConfirm] = useState<"delete" | "overwrite" | null>(null);
  const [ttl, setTtl] = useState("");
  const [comment, setComment] = useState("");
  const parsed = parseValue(text);
  const dirty = text !== original;
  const metadata = entry.metadata;

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.ctrlKey || event.metaKey) && event.key === "s") {
        event.preventDefault();
        document.querySelector<HTMLButtonElement>("[data-action=save]")?.click();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  /** Runs a checked write; a failed check loads what is there now and shows the conflict. */
  const run = async (against: string | null, mutation: Mutation, done: string) => {
    setError(undefined);
    try {
      await commit(jsonKey, against, mutation);
      if (mutation.type === "delete") {
        navigate(href("/keys", { prefix: props.parent }));
        return;
      }
      props.reload(done);
    } catch (caught) {
      if (!isConflict(caught)) {
        setError(caught);
        return;
      }
      const now = await api<Entry>("GET", `/api/keys/${props.path}?metadata=true`);
      setConflict(now);
    }
  };

  const remaining = () =>
    metadata?.expiresAt ? Math.max(1, metadata.expiresAt - Date.now()) : undefined;
  const save = (against: string | null) => {
    if (!parsed.ok) return;
    const expireIn = remaining();
    void run(
      against,
      {
        type: "set",
        key: jsonKey,
        value: parsed.json,
        ...(expireIn && { expireIn }),
        ...(comment.trim() && { comment: comment.trim() }),
      },
      "Saved.",
    );
  };
  const setExpiry = (seconds: number | undefined) => {
    const expireIn = seconds === undefined ? undefined : Math.round(seconds * 1000);
    void run(
      entry.versionstamp,
      { type: "set", key: jsonKey, value: entry.value, ...(expireIn && { expireIn }) },
      expireIn ? "Expiry set." : "The entry no longer expires.",
    );
  };

  return (
    <div className="split">
      <div>
        <ValueEditor text={text} onChange={setText} error={parsed.ok ? undefined : parsed.error} />
        <div className="row">
          <button
            type="button"
            className="primary"
            data-action="save"
            disabled={!parsed.ok || !dirty || conflict !== null}
            onClick={() => save(entry.versionstamp)}
            title="Ctrl+S"
          >
            Save
          </button>
          <button type="button" disabled={!dirty} onClick={() => setText(original)}>
            Revert
          </button>
          <button type="button" className="danger" onClick={() => setConfirm("delete")}>
            Delete…
          </button>
          <label className="inline">
            Comment
            <input
              value={comment}
              onChange={(e) => setComment(e.target.value)}
              placeholder="kept with the revision"
              size={24}
            />
          </label>
          {dirty && <span className="muted">Unsaved changes</span>}
        </div>
        {error !== undefined && <ErrorBox error={error} />}
        {conflict && (
          <Conflict
            mine={text}
            theirs={conflict}
            onTakeTheirs={() => {
              setConflict(null);
              props.reload("Loaded their version.");
            }}
            onKeepMine={() => setConfirm("overwrite")}
          />
        )}
      </div>
      <div>
        <h2>Metadata</h2>
        <dl className="meta" aria-label="Metadata">
          <dt>Versionstamp</dt>
          <dd className="mono">{entry.versionstamp}</dd>
          <dt>Version</dt>
          <dd>{metadata?.version ?? "—"}</dd>
          <dt>Created</dt>
          <dd>{formatTime(metadata?.createdAt)}</dd>
          <dt>Updated</dt>
          <dd>{formatTime(metadata?.updatedAt)}</dd>
          <dt>Expires</dt>
          <dd data-testid="expires">
            {metadata?.expiresAt ? formatTime(metadata.expiresAt) : "never"}
          </dd>
          <dt>Tags</dt>
          <dd>{metadata?.tags.length ? metadata.tags.join(", ") : "—"}</dd>
          <dt>Modified by</dt>
          <dd>{metadata?.modifiedBy ?? "—"}</dd>
          <dt>Comment</dt>
          <dd>{metadata?.comment ?? "—"}</dd>
          <dt>Data hash</dt>
          <dd className="mono">{metadata?.dataHash?.slice(0, 16) ?? "—"}…</dd>
        </dl>
        <h2>Expiry</h2>
        <form
          className="row"
          onSubmit={(event) => {
            event.preventDefault();
            const seconds = Number(ttl);
            if (Number.isFinite(seconds) && seconds > 0) setExpiry(seconds);
            else setError(new Error("the expiry is a positive number of seconds"));
          }}
        >
          <label>
            Expire in (seconds)
            <input
              value={ttl}
              onChange={(e) => setTtl(e.target.value)}
              inputMode="decimal"
              size={8}
            />
          </label>
          <button type="submit">Set expiry</button>
          <button
            type="button"
            disabled={!metadata?.expiresAt}
            onClick={() => setExpiry(undefined)}
          >
            Never expire
          </button>
        </form>
      </div>
      {confirm === "delete" && (
        <Confirm
          title="Delete this entry?"
          action="Delete"
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            setConfirm(null);
            void run(entry.versionstamp, { type: "delete", key: jsonKey }, "Deleted.");
          }}
        >
          The entry is deleted only if nobody changed it since you opened it.
        </Confirm>
      )}
      {confirm === "overwrite" && conflict && (
        <Confirm
          title="Save your edit over theirs?"
          action="Save mine"
          onCancel={() => setConfirm(null)}
          onConfirm={() => {
            setConfirm(null);
            const against = conflict.versionstamp;
            setConflict(null);
            save(against);
          }}
        >
          Your value replaces the one saved at {conflict.versionstamp ?? "(deleted)"}, if it is
          still that one.
        </Confirm>
      )}
    </div>
  );
}

function Conflict(props: {
  mine: string;
  theirs: Entry;
  onTakeTheirs: () => void;
  onKeepMine: () => void;
}) {
  const theirs = props.theirs.versionstamp === null ? "(deleted)" : pretty(props.theirs.value);
  return (
    <div className="error conflict" role="alert" data-testid="conflict">
      <div>
        <strong>CHECK_FAILED</strong> Conflict: this entry changed since you opened it
        {props.theirs.versionstamp
          ? ` (now at versionstamp ${props.theirs.versionstamp}${props.theirs.metadata?.modifiedBy ? `, by ${props.theirs.metadata.modifiedBy}` : ""})`
          : " (it was deleted)"}
        . Nothing was written. Theirs, against your edit:
      </div>
      <DiffView before={theirs} after={props.mine} />
      <div className="row">
        <button type="button" onClick={props.onTakeTheirs}>
          Load theirs (drop my edit)
        </button>
        <button type="button" className="danger" onClick={props.onKeepMine}>
          Save mine over theirs…
        </button>
      </div>
    </div>
  );
}
