/** The UI's frame: navigation, the token and namespace, the theme, keyboard shortcuts. */
import { type FormEvent, useEffect, useState } from "react";
import { ApiError, api, credentials, type Session } from "./api.js";
import { ErrorBox, Link, Loading, SessionContext } from "./components.js";
import { Access } from "./pages/access.js";
import { EntryView } from "./pages/entry.js";
import { Keys } from "./pages/keys.js";
import { Overview } from "./pages/overview.js";
import { Queues } from "./pages/queues.js";
import { Typed } from "./pages/typed.js";
import { Watch } from "./pages/watch.js";
import { currentNamespace, href, navigate, useRoute } from "./router.js";
import { useAsync } from "./use-async.js";

const PAGES = [
  { path: "/", label: "Overview", key: "o" },
  { path: "/keys", label: "Keys", key: "k" },
  { path: "/watch", label: "Watch", key: "w" },
  { path: "/queues", label: "Queues", key: "q" },
  { path: "/typed", label: "Stores", key: "s" },
  { path: "/access", label: "Access", key: "a" },
] as const;

export const SHORTCUTS: [string, string][] = [
  ...PAGES.map(({ label, key }): [string, string] => [`g ${key}`, `go to ${label}`]),
  ["/", "focus the filter or search box"],
  ["j / k", "move down / up in a list"],
  ["Enter", "open the selected row"],
  ["n", "new entry (on Keys)"],
  ["t", "switch between light and dark"],
  ["?", "show these shortcuts"],
  ["Escape", "close a dialog"],
];

type Theme = "light" | "dark";

function initialTheme(): Theme {
  const saved = localStorage.getItem("cellar.theme");
  if (saved === "light" || saved === "dark") return saved;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

const typing = (target: EventTarget | null) =>
  target instanceof HTMLElement &&
  (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));

export function App() {
  const route = useRoute();
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [token, setToken] = useState(credentials.token());
  const [help, setHelp] = useState(false);
  const namespace = currentNamespace();
  const session = useAsync(() => api<Session>("GET", "/api/session"), [token, namespace]);

  useEffect(() => {
    const page =
      PAGES.find((p) => p.path === route.path)?.label ?? (route.path === "/entry" ? "Entry" : "");
    document.title = page ? `${page} · Cellar` : "Cellar";
  }, [route.path]);

  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("cellar.theme", theme);
  }, [theme]);

  useEffect(() => {
    let pendingG = false;
    const onKey = (event: KeyboardEvent) => {
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      if (document.querySelector("dialog[open]")) return;
      if (pendingG) {
        pendingG = false;
        const page = PAGES.find((p) => p.key === event.key);
        if (page) {
          event.preventDefault();
          navigate(href(page.path));
        }
        return;
      }
      if (event.key === "g") pendingG = true;
      else if (event.key === "t") setTheme((t) => (t === "dark" ? "light" : "dark"));
      else if (event.key === "?") setHelp(true);
      else if (event.key === "/") {
        const box = document.querySelector<HTMLInputElement>("[data-shortcut='filter']");
        if (box) {
          event.preventDefault();
          box.focus();
        }
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const signIn = (next: string) => {
    credentials.setToken(next);
    setToken(next);
  };
  const needsToken = session.error instanceof ApiError && session.error.status === 401;

  return (
    <SessionContext.Provider value={session.data ?? null}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href={href("/")} className="brand">
          Cellar
        </Link>
        <nav aria-label="Pages">
          {PAGES.map((page) => (
            <Link
              key={page.path}
              href={href(page.path)}
              aria-current={
                route.path === page.path || (page.path === "/keys" && route.path === "/entry")
                  ? "page"
                  : undefined
              }
            >
              {page.label}
            </Link>
          ))}
        </nav>
        <NamespacePicker namespace={namespace} working={session.data?.namespace} />
        <TokenBadge session={session.data} token={token} onSignOut={() => signIn("")} />
        <button
          type="button"
          className="icon"
          aria-label={`Switch to the ${theme === "dark" ? "light" : "dark"} theme`}
          onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
        >
          {theme === "dark" ? "☀" : "☾"}
        </button>
        <button
          type="button"
          className="icon"
          aria-label="Keyboard shortcuts"
          onClick={() => setHelp(true)}
        >
          ?
        </button>
      </header>
      {session.data?.access === "read" && (
        <p className="banner">This token is read-only: the server refuses writes.</p>
      )}
      <main id="main">
        {needsToken ? (
          <TokenForm error={token ? session.error : undefined} onSubmit={signIn} />
        ) : session.error ? (
          <ErrorBox error={session.error} onRetry={session.reload} />
        ) : !session.data ? (
          <Loading />
        ) : (
          <Page path={route.path} />
        )}
      </main>
      {help && <Help onClose={() => setHelp(false)} />}
    </SessionContext.Provider>
  );
}

function Page({ path }: { path: string }) {
  switch (path) {
    case "/":
      return <Overview />;
    case "/keys":
      return <Keys />;
    case "/entry":
      return <EntryView />;
    case "/watch":
      return <Watch />;
    case "/queues":
      return <Queues />;
    case "/typed":
      return <Typed />;
    case "/access":
      return <Access />;
    default:
      return <ErrorBox error={new Error(`no page at ${path}`)} />;
  }
}

function TokenForm({ error, onSubmit }: { error: unknown; onSubmit: (token: string) => void }) {
  const [value, setValue] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSubmit(value.trim());
  };
  return (
    <form className="token-form" onSubmit={submit}>
      <h1>Sign in</h1>
      <p>
        This server checks tokens. Enter one from its tokens file; it is kept in this tab only
        (session storage) and sent as <code>Authorization: Bearer</code>.
      </p>
      {error !== undefined && <ErrorBox error={error} />}
      <label>
        Token
        <input
          type="password"
          name="token"
          autoComplete="off"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          // biome-ignore lint/a11y/noAutofocus: the only thing to do on this page
          autoFocus
        />
      </label>
      <button type="submit" className="primary">
        Sign in
      </button>
    </form>
  );
}

function TokenBadge(props: { session: Session | undefined; token: string; onSignOut: () => void }) {
  const { session } = props;
  if (!session) return null;
  const who = session.tokens ? (session.name ?? "token") : "no tokens (loopback)";
  return (
    <span className="who">
      <span title="what this token may do" className={`access access-${session.access}`}>
        {session.access}
      </span>{" "}
      {who}
      {props.token && (
        <button type="button" className="small" onClick={props.onSignOut}>
          Sign out
        </button>
      )}
    </span>
  );
}

/** `working`: the namespace the server says requests work in (a token's own, without a choice). */
function NamespacePicker({
  namespace,
  working,
}: {
  namespace: string;
  working: string | undefined;
}) {
  const [value, setValue] = useState(namespace);
  useEffect(() => setValue(namespace), [namespace]);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const url = new URL(location.href);
    if (value) url.searchParams.set("ns", value);
    else url.searchParams.delete("ns");
    navigate(url.pathname + url.search);
  };
  return (
    <form className="ns" onSubmit={submit}>
      <label className="ns-label">
        Namespace
        <input
          value={value}
          placeholder={working ? working : "(default)"}
          onChange={(e) => setValue(e.target.value)}
          onBlur={submit}
          size={12}
        />
      </label>
    </form>
  );
}

function Help({ onClose }: { onClose: () => void }) {
  return (
    <dialog
      open
      className="confirm"
      aria-label="Keyboard shortcuts"
      onKeyDown={(e) => e.key === "Escape" && onClose()}
    >
      <h2>Keyboard shortcuts</h2>
      <table className="grid compact">
        <tbody>
          {SHORTCUTS.map(([keys, what]) => (
            <tr key={keys}>
              <th scope="row">
                <kbd>{keys}</kbd>
              </th>
              <td>{what}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="actions">
        <button
          type="button"
          onClick={onClose}
          // biome-ignore lint/a11y/noAutofocus: focus goes to the dialog's one button
          autoFocus
        >
          Close
        </button>
      </div>
    </dialog>
  );
}
