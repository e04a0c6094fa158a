/**
 * The keys as a tree by their parts. A node lists its distinct next parts without reading every
 * key below it: pages of keys are grouped by their next part, and when a whole page falls under
 * one child the next read skips past that child's keys (see `skipChildCursor`).
 */
import { type KeyboardEvent, useEffect, useState } from "react";
import type { KvKeyPart } from "../../codec/key.js";
import { api, type Page } from "../api.js";
import { ErrorBox, KeyParts, Link, Part } from "../components.js";
import { jsonPathOf, pathOf, skipChildCursor, toJsonKey, toParts } from "../keys.js";
import { href } from "../router.js";

const CHILDREN_PER_LOAD = 100;
/** Keys a read takes while children are small; once one fills a read, reads shrink to 2. */
const KEYS_PER_READ = 50;

interface Child {
  part: KvKeyPart;
  /** The key prefix + [part] holds an entry. */
  entry: boolean;
  /** Keys longer than prefix + [part] exist. */
  below: boolean;
}

/**
 * Reads up to `CHILDREN_PER_LOAD` children of `prefix` from `cursor` on; `shown` gets the
 * children found so far after each read, so a large node fills in as it is read.
 */
async function readChildren(
  prefix: readonly KvKeyPart[],
  cursor: string | undefined,
  shown: (children: Child[]) => void,
): Promise<{ children: Child[]; cursor: string | undefined }> {
  const children = new Map<string, Child>();
  let next = cursor;
  let limit = KEYS_PER_READ;
  for (;;) {
    const page = await api<Page>("POST", "/api/list", {
      prefix: toJsonKey(prefix),
      limit,
      keysOnly: true,
      ...(next && { cursor: next }),
    });
    const seen = new Set<string>();
    let last: KvKeyPart | undefined;
    for (const { key } of page.entries) {
      const parts = toParts(key);
      const part = parts[prefix.length]!;
      const id = pathOf([part]);
      seen.add(id);
      last = part;
      const child = children.get(id) ?? { part, entry: false, below: false };
      if (parts.length === prefix.length + 1) child.entry = true;
      else child.below = true;
      children.set(id, child);
    }
    shown([...children.values()]);
    if (!page.hasMore || !page.cursor || last === undefined) {
      return { children: [...children.values()], cursor: undefined };
    }
    // A page under one child: jump past the rest of its keys. Its siblings are likely as large,
    // so the next read takes two keys: the next child, and whether it has keys below it.
    next = seen.size === 1 ? skipChildCursor(last) : page.cursor;
    limit = seen.size === 1 ? 2 : KEYS_PER_READ;
    if (children.size > CHILDREN_PER_LOAD) {
      // The last child may go on in the next read: keep it for then.
      const kept = [...children.values()].slice(0, CHILDREN_PER_LOAD);
      const resume = kept.at(-1)!.part;
      return { children: kept, cursor: skipChildCursor(resume) };
    }
  }
}

export function KeyTree({ root }: { root: KvKeyPart[] }) {
  const onKeyDown = (event: KeyboardEvent<HTMLUListElement>) => {
    const nodes = Array.from(event.currentTarget.querySelectorAll<HTMLElement>("[data-node]"));
    const at = nodes.indexOf(document.activeElement as HTMLElement);
    const step = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 }[event.key];
    if (step !== undefined) {
      event.preventDefault();
      nodes[Math.max(0, Math.min(nodes.length - 1, at + step))]?.focus();
    }
  };
  return (
    <ul className="tree root" data-testid="tree" onKeyDown={onKeyDown}>
      <li className="muted">
        <KeyParts parts={root} />
      </li>
      <Children prefix={root} />
    </ul>
  );
}

function Children({ prefix }: { prefix: KvKeyPart[] }) {
  const [state, setState] = useState<{
    children: Child[];
    cursor: string | undefined;
    loading: boolean;
    error?: unknown;
    started: boolean;
  }>({ children: [], cursor: undefined, loading: false, started: false });

  const load = (cursor: string | undefined, live: () => boolean = () => true) => {
    // Called at mount or from "Load more", when `state` is the one on screen.
    const before = state.children;
    setState((s) => ({ ...s, loading: true, started: true }));
    const shown = (found: Child[]) => {
      if (live()) setState((s) => ({ ...s, children: [...before, ...found] }));
    };
    readChildren(prefix, cursor, shown).then(
      (page) => {
        if (!live()) return;
        setState({
          children: [...before, ...page.children],
          cursor: page.cursor,
          loading: false,
          started: true,
        });
      },
      (error: unknown) => {
        if (live()) setState((s) => ({ ...s, loading: false, error }));
      },
    );
  };
  // biome-ignore lint/correctness/useExhaustiveDependencies: a node reads its children once
  useEffect(() => {
    let live = true;
    load(undefined, () => live);
    return () => {
      live = false;
    };
  }, []);
  return (
    <>
      {state.children.map((child) => (
        <Node key={pathOf([child.part])} prefix={prefix} child={child} />
      ))}
      {state.loading && <li className="muted">Loading…</li>}
      {state.error !== undefined && (
        <li>
          <ErrorBox error={state.error} />
        </li>
      )}
      {state.started && !state.loading && state.children.length === 0 && !state.error && (
        <li className="muted">No keys.</li>
      )}
      {state.cursor && !state.loading && (
        <li>
          <button type="button" className="small" data-node onClick={() => load(state.cursor)}>
            Load more
          </button>
        </li>
      )}
    </>
  );
}

function Node({ prefix, child }: { prefix: KvKeyPart[]; child: Child }) {
  const [open, setOpen] = useState(false);
  const key = [...prefix, child.part];
  const toggle = () => child.below && setOpen(!open);
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === "ArrowRight" && child.below && !open) setOpen(true);
    else if (event.key === "ArrowLeft" && open) setOpen(false);
    else return;
    event.preventDefault();
    event.stopPropagation();
  };
  return (
    <li>
      <button
        type="button"
        className="node"
        data-node
        aria-expanded={child.below ? open : undefined}
        onClick={toggle}
        onKeyDown={onKeyDown}
      >
        <span className="twisty" aria-hidden="true">
          {child.below ? (open ? "▾" : "▸") : "·"}
        </span>
        <Part part={child.part} />
      </button>
      {child.entry && (
        <Link href={href("/entry", { key: jsonPathOf(toJsonKey(key)) })} className="small-link">
          entry
        </Link>
      )}
      {child.below && (
        <Link href={href("/keys", { prefix: pathOf(key) })} className="small-link">
          list
        </Link>
      )}
      {open && (
        <ul className="tree">
          <Children prefix={key} />
        </ul>
      )}
    </li>
  );
}
