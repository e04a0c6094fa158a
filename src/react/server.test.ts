/**
 * Server rendering in Node: `renderToString` reads each hook's server snapshot (loading, or the
 * provider's `initial` entries) and starts no subscription; with Suspense, a streaming render
 * (`prerender`) waits for the reads and renders their values.
 */
import { createElement, Suspense } from "react";
import { renderToString } from "react-dom/server";
import { prerender } from "react-dom/static";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import { useList, useValue } from "./hooks.js";
import { KvProvider } from "./provider.js";

let kv: Kv;
beforeEach(async () => {
  kv = await openKv();
  await kv.set(["theme"], "dark");
  await kv.set(["todo", 1], "one");
});
afterEach(() => kv.close());

function Theme({ suspense = false }: { suspense?: boolean }) {
  const { value, loading } = useValue<string>(["theme"], { suspense });
  return createElement("p", null, loading ? "loading" : value);
}

function Todos() {
  const { entries, loading } = useList<string>({ prefix: ["todo"] }, { suspense: true });
  return createElement("ul", null, loading ? "loading" : entries.map((e) => e.value).join(","));
}

describe("server rendering", () => {
  it("renders loading with renderToString, and subscribes to nothing", async () => {
    const html = renderToString(createElement(KvProvider, { kv }, createElement(Theme)));
    expect(html).toBe("<p>loading</p>");
  });

  it("renders the provider's initial entries", async () => {
    const initial = [await kv.get(["theme"])];
    const html = renderToString(createElement(KvProvider, { kv, initial }, createElement(Theme)));
    expect(html).toBe("<p>dark</p>");
  });

  it("renders a Suspense fallback with renderToString, the values with a streaming render", async () => {
    const app = createElement(
      KvProvider,
      { kv },
      createElement(
        Suspense,
        { fallback: createElement("p", null, "fallback") },
        createElement(Theme, { suspense: true }),
        createElement(Todos),
      ),
    );
    expect(renderToString(app)).toContain("fallback");
    const { prelude } = await prerender(app);
    const html = await new Response(prelude).text();
    expect(html).toContain("<p>dark</p>");
    expect(html).toContain("<ul>one</ul>");
  });
});
