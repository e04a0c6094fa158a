/**
 * A stored value the JSON tags cannot carry (a cycle, a sparse array) is served whole as `$v8`:
 * reads, pages and streams that include it answer, and a client can write it back as it came.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/serve.js";
import { valueFromJson } from "../../src/wire/json.js";
import { send, serve, sse } from "./helpers.js";

let server: RunningServer;
const cyclic: Record<string, unknown> = { name: "loop" };
cyclic.self = cyclic;
// biome-ignore lint/suspicious/noSparseArray: the sparse array is the point
const sparse = [1, , 3];

beforeAll(async () => {
  server = await serve();
  await server.kv.set(["odd", "cyclic"], cyclic);
  await server.kv.set(["odd", "plain"], { ok: true });
  await server.kv.set(["odd", "sparse"], sparse);
});
afterAll(() => server.close());

it("serves such a value on a point read, and takes it back in a write", async () => {
  const read = await send(server.url, "/api/keys/odd/cyclic");
  expect(read.status).toBe(200);
  expect(Object.keys(read.json.value)).toEqual(["$v8"]);
  const copy = valueFromJson(read.json.value) as Record<string, unknown>;
  expect(copy.self).toBe(copy);

  const put = await send(server.url, "/api/keys/odd/copy", {
    method: "PUT",
    body: { value: read.json.value },
  });
  expect(put.status).toBe(200);
  const stored = (await server.kv.get<Record<string, unknown>>(["odd", "copy"])).value!;
  expect([stored.name, stored.self === stored]).toEqual(["loop", true]);
});

it("pages through a range that holds such values", async () => {
  const page = await send(server.url, "/api/list?prefix=odd");
  expect(page.status).toBe(200);
  const values = Object.fromEntries(
    page.json.entries.map((e: { key: string[]; value: unknown }) => [
      e.key[1],
      valueFromJson(e.value),
    ]),
  );
  expect(values.plain).toEqual({ ok: true });
  expect(values.sparse).toEqual(sparse);
  expect(1 in (values.sparse as unknown[])).toBe(false);
});

it("keeps a prefix watch open across such a value", async () => {
  const after = await server.kv.currentVersionstamp();
  const stream = await sse(server.url, `/api/watch/prefix?prefix=stream&after=${after}`);
  try {
    await server.kv.set(["stream", "a"], sparse);
    await server.kv.set(["stream", "b"], "after");
    const first = await stream.next();
    expect(valueFromJson(first.data.entries[0].value)).toEqual(sparse);
    expect((await stream.next()).data.entries[0].value).toBe("after");
  } finally {
    stream.close();
  }
});
