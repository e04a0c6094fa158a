/** A URL for every view: the path picks the page, the query holds its state. */
import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();
const notify = () => {
  for (const listener of listeners) listener();
};
window.addEventListener("popstate", notify);

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const snapshot = () => location.pathname + location.search;

export interface Route {
  readonly path: string;
  readonly params: URLSearchParams;
}

/**
 * A query's parameters, `+` kept as itself: key paths and patterns use it (`users/+/settings`),
 * and the UI's own links write a space as `%20`.
 */
const paramsOf = (search: string) => new URLSearchParams(search.replace(/\+/g, "%2B"));

export function useRoute(): Route {
  const href = useSyncExternalStore(subscribe, snapshot);
  const url = new URL(href, location.origin);
  return { path: url.pathname, params: paramsOf(url.search) };
}

/** Goes to `href` (same origin); `replace` keeps the history entry, for state such as a filter. */
export function navigate(href: string, replace = false): void {
  if (href === snapshot()) return;
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  notify();
}

/** The namespace the UI works in: the `ns` parameter of every view's URL (default: none). */
export const currentNamespace = (): string => paramsOf(location.search).get("ns") ?? "";

/**
 * `path?name=value…`, leaving out empty values; the current namespace goes along unless `ns` is
 * given (`""` for the default namespace).
 */
export function href(path: string, params: Record<string, string | undefined> = {}): string {
  const all = { ns: currentNamespace(), ...params };
  const query = Object.entries(all)
    .filter((pair): pair is [string, string] => pair[1] !== undefined && pair[1] !== "")
    // Key paths stay readable in the address bar: `/`, `:` and `~` need no escaping in a query.
    .map(
      ([name, value]) =>
        `${name}=${encodeURIComponent(value).replace(/%2F/g, "/").replace(/%3A/g, ":")}`,
    )
    .join("&");
  return query ? `${path}?${query}` : path;
}
