/**
 * Keys: a paged, virtualised table of a prefix or range (with a where filter), full-text search
 * over a search index, and a tree of the keys by their parts. Every filter is in the URL.
 */
import { type FormEvent, useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { KvKeyPart } from "../../codec/key.js";
import { api, type JsonKey, type Page } from "../api.js";
import { ErrorBox, KeyParts, Link, Loading } from "../components.js";
import { jsonPathOf, partsOf, toJsonKey, toParts } from "../keys.js";
import { href, navigate, useRoute } from "../router.js";
import { useAsync } from "../use-async.js";
import { VirtualList } from "../virtual-list.js";
import { KeyTree } from "./key-tree.js";

const PAGE_SIZE = 200;

/** What the URL asks the keys page for. */
export interface KeyQuery {
  view: "table" | "tree";
  prefix: string;
  start: string;
  end: string;
  where: string;
  index: string;
  q: string;
}

function queryOf(params: URLSearchParams): KeyQuery {
  return {
    view: params.get("view") === "tree" ? "tree" : "table",
    prefix: params.get("prefix") ?? "",
    start: params.get("start") ?? "",
    end: params.get("end") ?? "",
    where: params.get("where") ?? "",
    index: params.get("index") ?? "",
    q: params.get("q") ?? "",
  };
}

const keysHref = (query: Partial<KeyQuery>) =>
  href("/keys", { ...query, view: query.view === "tree" ? "tree" : undefined });

export const entryHref = (key: JsonKey) => href("/entry", { key: jsonPathOf(key) });

export function Keys() {
  const { params } = useRoute();
  const query = queryOf(params);
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement;
      if (event.key !== "n" || event.ctrlKey || event.metaKey || event.altKey) return;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      event.preventDefault();
      navigate(href("/entry", { new: "1", key: query.prefix }));
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [query.prefix]);
  return (
    <section>
      <div className="row">
        <h1>Keys</h1>
        <span className="spacer" />
        <Link className="button-link" href={href("/entry", { new: "1", key: query.prefix })}>
          New entry
        </Link>
      </div>
      <Filters query={query} />
      <nav className="tabs" aria-label="Views">
        <Link
          href={keysHref({ ...query, view: "table" })}
          aria-current={query.view === "table" ? "page" : undefined}
        >
          Table
        </Link>
        <Link
          href={keysHref({ ...query, view: "tree" })}
          aria-current={query.view === "tree" ? "page" : undefined}
        >
          Tree
        </Link>
      </nav>
      {query.view === "tree" ? (
        <TreeView query={query} />
      ) : query.q && query.index ? (
        <SearchTable query={query} />
      ) : (
        <ListTable query={query} />
      )}
    </section>
  );
}

function Filters({ query }: { query: KeyQuery }) {
  const [draft, setDraft] = useState(query);
  const asked = JSON.stringify(query);
  useEffect(() => setDraft(JSON.parse(asked) as KeyQuery), [asked]);
  const indexes = useAsync(
    () => api<{ indexes: { name: string; state: string }[] }>("GET", "/api/search-indexes"),
    [],
  );
  const submit = (event: FormEvent) => {
    event.preventDefault();
    navigate(keysHref(draft));
  };
  const field = (name: keyof KeyQuery) => ({
    value: draft[name],
    onChange: (e: { target: { value: string } }) => setDraft({ ...draft, [name]: e.target.value }),
  });
  const names = indexes.data?.indexes.map((i) => i.name) ?? [];
  return (
    <form className="toolbar" onSubmit={submit} aria-label="Filter keys">
      <label>
        Prefix (key path)
        <input {...field("prefix")} placeholder="users/~n:42" data-shortcut="filter" size={24} />
      </label>
      <label>
        From (inclusive)
        <input {...field("start")} placeholder="users/a" size={14} />
      </label>
      <label>
        To (exclusive)
        <input {...field("end")} placeholder="users/m" size={14} />
      </label>
      <label>
        Where (JSON)
        <input {...field("where")} placeholder='{"age": {"$gte": 18}}' size={26} />
      </label>
      <label>
        Search index
        <select {...field("index")} disabled={names.length === 0}>
          <option value="">{names.length === 0 ? "(no search index)" : "(none)"}</option>
          {names.map((name) => (
            <option key={name}>{name}</option>
          ))}
        </select>
      </label>
      <label>
        Search
        <input
          {...field("q")}
          placeholder='sqlite "write ahead"'
          disabled={!draft.index}
          size={18}
        />
      </label>
      <button type="submit" className="primary">
        Apply
      </button>
      <Link href={keysHref({ view: query.view })}>Clear</Link>
    </form>
  );
}

/** The list body for a query: a prefix, a range inside it, or a range; parse errors throw. */
export function selectorOf(query: KeyQuery): { prefix?: JsonKey; start?: JsonKey; end?: JsonKey } {
  const out: { prefix?: JsonKey; start?: JsonKey; end?: JsonKey } = {};
  // Both bounds make a range of their own; one bound narrows the prefix.
  const both = query.start !== "" && query.end !== "";
  if (!both) out.prefix = toJsonKey(partsOf(query.prefix));
  if (query.start) out.start = toJsonKey(partsOf(query.start));
  if (query.end) out.end = toJsonKey(partsOf(query.end));
  return out;
}

function parseWhere(text: string): Record<string, unknown> | undefined {
  if (!text.trim()) return undefined;
  let where: unknown;
  try {
    where = JSON.parse(text);
  } catch (error) {
    throw new Error(`the where filter is not JSON: ${(error as Error).message}`);
  }
  if (typeof where !== "object" || where === null || Array.isArray(where)) {
    throw new Error("the where filter is a JSON object");
  }
  return where as Record<string, unknown>;
}

interface Row {
  key: JsonKey;
  value?: unknown;
  versionstamp: string;
  score?: number;
}

/** Rows loaded page by page with a cursor; `fetchPage` reads one. */
function usePaged(
  fetchPage: (cursor: string | undefined) => Promise<{ rows: Row[]; cursor: string | null }>,
  /** What the rows depend on: a new value starts over. */
  asked: string,
) {
  const [state, setState] = useState<{
    rows: Row[];
    cursor: string | null | undefined;
    loading: boolean;
    error?: unknown;
  }>({ rows: [], cursor: undefined, loading: true });
  const generation = useRef(0);
  const inFlight = useRef(false);
  const fetchLatest = useRef(fetchPage);
  fetchLatest.current = fetchPage;

  const load = useCallback((cursor: string | undefined, append: boolean) => {
    const mine = generation.current;
    inFlight.current = true;
    setState((s) => ({ ...s, loading: true }));
    fetchLatest.current(cursor).then(
      (page) => {
        if (generation.current !== mine) return;
        inFlight.current = false;
        setState((s) => ({
          rows: append ? [...s.rows, ...page.rows] : page.rows,
          cursor: page.cursor,
          loading: false,
        }));
      },
      (error: unknown) => {
        if (generation.current !== mine) return;
        inFlight.current = false;
        setState((s) => ({ ...s, cursor: null, loading: false, error }));
      },
    );
  }, []);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `asked` is what fetchPage reads
  useEffect(() => {
    generation.current++;
    setState({ rows: [], cursor: undefined, loading: true });
    load(undefined, false);
  }, [asked, load]);

  const more = useCallback(() => {
    if (state.cursor && !inFlight.current) load(state.cursor, true);
  }, [state.cursor, load]);
  return { ...state, hasMore: typeof state.cursor === "string" && state.cursor !== "", more };
}

function preview(value: unknown): string {
  if (value === undefined) return "";
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function Rows(props: {
  rows: ReturnType<typeof usePaged>;
  label: string;
  score?: boolean;
  count?: () => Promise<number>;
}) {
  const { rows } = props;
  const open = (row: Row) => navigate(entryHref(row.key));
  if (rows.error !== undefined && rows.rows.length === 0) return <ErrorBox error={rows.error} />;
  if (rows.loading && rows.rows.length === 0) return <Loading what="Reading keys" />;
  return (
    <>
      {rows.error !== undefined && <ErrorBox error={rows.error} />}
      <div className="row">
        <p className="status-line" role="status">
          {rows.rows.length === 0
            ? "No entries."
            : `${rows.rows.length.toLocaleString("en")} loaded${rows.hasMore ? ", more as you scroll" : ", all of them"}`}
        </p>
        {props.count && rows.hasMore && <Count count={props.count} />}
      </div>
      {rows.rows.length > 0 && (
        <VirtualList
          label={props.label}
          rows={rows.rows}
          hasMore={rows.hasMore}
          loadingMore={rows.loading}
          onNearEnd={rows.more}
          onOpen={open}
          rowKey={(row) => jsonPathOf(row.key)}
          header={
            <>
              <span className="cell-key">Key</span>
              <span className="cell-value">Value</span>
              <span className="cell-vs">{props.score ? "Score" : "Versionstamp"}</span>
            </>
          }
          render={(row) => (
            <>
              <span className="cell-key">
                <Link href={entryHref(row.key)} tabIndex={-1}>
                  <KeyParts parts={toParts(row.key)} />
                </Link>
              </span>
              <span className="cell-value mono">{preview(row.value)}</span>
              <span className="cell-vs mono">
                {props.score ? row.score?.toFixed(3) : row.versionstamp}
              </span>
            </>
          )}
        />
      )}
    </>
  );
}

function ListTable({ query }: { query: KeyQuery }) {
  const rows = usePaged(
    async (cursor) => {
      const where = parseWhere(query.where);
      const page = await api<Page>("POST", "/api/list", {
        ...selectorOf(query),
        limit: PAGE_SIZE,
        ...(cursor && { cursor }),
        ...(where && { where }),
      });
      return {
        rows: page.entries,
        cursor: page.hasMore ? page.cursor : null,
      };
    },
    JSON.stringify([query.prefix, query.start, query.end, query.where]),
  );
  const count = async () => {
    const where = parseWhere(query.where);
    const { count } = await api<{ count: number }>("POST", "/api/count", {
      ...selectorOf(query),
      ...(where && { where }),
    });
    return count;
  };
  return (
    <Rows
      key={JSON.stringify([query.prefix, query.start, query.end, query.where])}
      rows={rows}
      label="Entries"
      count={count}
    />
  );
}

/** Counts the whole range on demand: a count reads every key of it. */
function Count({ count }: { count: () => Promise<number> }) {
  const [state, setState] = useState<{ busy?: boolean; total?: number; error?: unknown }>({});
  const run = () => {
    setState({ busy: true });
    count().then(
      (total) => setState({ total }),
      (error: unknown) => setState({ error }),
    );
  };
  if (state.error !== undefined) return <ErrorBox error={state.error} />;
  if (state.total !== undefined) {
    return (
      <span className="status-line" data-testid="count">
        {state.total.toLocaleString("en")} in all
      </span>
    );
  }
  return (
    <button type="button" className="small" disabled={state.busy} onClick={run}>
      {state.busy ? "Counting…" : "Count all"}
    </button>
  );
}

function SearchTable({ query }: { query: KeyQuery }) {
  const rows = usePaged(
    async (cursor) => {
      const where = parseWhere(query.where);
      const result = await api<{ hits: Row[]; cursor: string | null }>("POST", "/api/search", {
        index: query.index,
        query: query.q,
        limit: PAGE_SIZE,
        ...(cursor && { cursor }),
        ...(where && { where }),
      });
      return { rows: result.hits, cursor: result.cursor };
    },
    JSON.stringify([query.index, query.q, query.where]),
  );
  return <Rows rows={rows} label="Search hits" score />;
}

function TreeView({ query }: { query: KeyQuery }) {
  const root = useMemo((): { parts: KvKeyPart[] } | { error: unknown } => {
    try {
      return { parts: partsOf(query.prefix) };
    } catch (error) {
      return { error };
    }
  }, [query.prefix]);
  if ("error" in root) return <ErrorBox error={root.error} />;
  return <KeyTree root={root.parts} />;
}
