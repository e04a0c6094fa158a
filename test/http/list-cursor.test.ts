/**
 * The empty cursor over HTTP: `cursor=` (or `"cursor": ""`) lists from the start of the range,
 * as no cursor does, on every selector shape and in both directions.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineStore } from "../../src/index.js";
import type { RunningServer } from "../../src/server/index.js";
import { send, serve } from "./helpers.js";

const shapes: [string, Record<string, string>, Record<string, unknown>][] = [
  ["prefix", { prefix: "items" }, { prefix: ["items"] }],
  [
    "prefix and start",
    { prefix: "items", start: "items/~n:3" },
    { prefix: ["items"], start: ["items", 3] },
  ],
  [
    "prefix and end",
    { prefix: "items", end: "items/~n:7" },
    { prefix: ["items"], end: ["items", 7] },
  ],
  [
    "start and end",
    { start: "items/~n:2", end: "items/~n:8" },
    { start: ["items", 2], end: ["items", 8] },
  ],
];

const notes = defineStore("notes", z.object({ text: z.string() }));

describe("an empty cursor over HTTP", () => {
  let server: RunningServer;
  const call = (path: string, body?: unknown) =>
    send(server.url, path, body === undefined ? {} : { body });

  beforeAll(async () => {
    server = await serve({ stores: [notes] });
    for (let i = 0; i < 10; i++) await server.kv.set(["items", i], i);
    for (let i = 0; i < 3; i++) {
      const put = await send(server.url, `/api/stores/notes/n${i}`, {
        method: "PUT",
        body: { value: { text: `${i}` } },
      });
      expect(put.status, put.text).toBe(200);
    }
  });
  afterAll(() => server.close());

  for (const [shape, paths, keys] of shapes) {
    it(`GET and POST /api/list take cursor "" as no cursor (${shape})`, async () => {
      for (const reverse of [false, true]) {
        const flags = { limit: "3", ...(reverse && { reverse: "true" }) };
        const first = await call(`/api/list?${new URLSearchParams({ ...paths, ...flags })}`);
        expect(first.status, first.text).toBe(200);
        const empty = await call(
          `/api/list?${new URLSearchParams({ ...paths, ...flags, cursor: "" })}`,
        );
        expect(empty.status, empty.text).toBe(200);
        expect(empty.json).toEqual(first.json);

        const body = { ...keys, limit: 3, reverse };
        const posted = await call("/api/list", { ...body, cursor: "" });
        expect(posted.status, posted.text).toBe(200);
        expect(posted.json).toEqual((await call("/api/list", body)).json);
      }
    });
  }

  it("a typed store's list takes cursor= as no cursor", async () => {
    const empty = await call("/api/stores/notes?limit=2&cursor=");
    expect(empty.status, empty.text).toBe(200);
    expect(empty.json).toEqual((await call("/api/stores/notes?limit=2")).json);
    expect(empty.json.entries).toHaveLength(2);
  });
});
