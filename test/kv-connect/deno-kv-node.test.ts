/**
 * `@deno/kv` (Deno's KV client for Node) over KV Connect against a Cellar server. It speaks
 * HTTP/1.1 through Node's fetch, so this also covers the data path on the HTTP/1.1 side.
 */
import { type Kv as DenoKv, KvU64 as DenoKvU64, openKv } from "@deno/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvU64 } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";

describe("@deno/kv against Cellar", () => {
  let server: RunningServer;
  let kv: DenoKv;

  beforeAll(async () => {
    server = await startServer({ db: ":memory:", port: 0 });
    kv = await openKv(`${server.url}/kv`, { accessToken: "any-token-on-loopback" });
  });

  afterAll(async () => {
    kv?.close();
    await server?.close();
  });

  it("sets, gets, getMany and deletes", async () => {
    const res = await kv.set(["users", "ada"], { name: "Ada", langs: ["en"] });
    expect(res.ok).toBe(true);
    expect(await kv.get(["users", "ada"])).toEqual({
      key: ["users", "ada"],
      value: { name: "Ada", langs: ["en"] },
      versionstamp: res.versionstamp,
    });
    const [a, b] = await kv.getMany([
      ["users", "ada"],
      ["users", "bob"],
    ]);
    expect(a?.value).toEqual({ name: "Ada", langs: ["en"] });
    expect(b).toEqual({ key: ["users", "bob"], value: null, versionstamp: null });
    await kv.delete(["users", "ada"]);
    expect((await kv.get(["users", "ada"])).value).toBeNull();
  });

  it("lists with limit, reverse and cursor", async () => {
    for (let i = 0; i < 6; i++) await kv.set(["items", i], i * 10);
    const all = [];
    for await (const e of kv.list({ prefix: ["items"] }, { reverse: true })) all.push(e.value);
    expect(all).toEqual([50, 40, 30, 20, 10, 0]);
    const page = kv.list({ prefix: ["items"] }, { limit: 2 });
    const first = [];
    for await (const e of page) first.push(e.key);
    const rest = [];
    for await (const e of kv.list({ prefix: ["items"] }, { cursor: page.cursor }))
      rest.push(e.key[1]);
    expect(first).toEqual([
      ["items", 0],
      ["items", 1],
    ]);
    expect(rest).toEqual([2, 3, 4, 5]);
  });

  it("commits checks and u64 mutations atomically", async () => {
    const { versionstamp } = await kv.set(["counter"], new DenoKvU64(1n));
    const ok = await kv
      .atomic()
      .check({ key: ["counter"], versionstamp })
      .sum(["counter"], 41n)
      .max(["peak"], 9n)
      .commit();
    expect(ok.ok).toBe(true);
    const failed = await kv
      .atomic()
      .check({ key: ["counter"], versionstamp })
      .sum(["counter"], 1n)
      .commit();
    expect(failed.ok).toBe(false);
    expect((await server.kv.get(["counter"])).value).toEqual(new KvU64(42n));
    expect((await server.kv.get(["peak"])).value).toEqual(new KvU64(9n));
  });

  // @deno/kv holds back a first state in which every watched key is absent, so start from a value.
  it("watches keys written by Cellar", async () => {
    await server.kv.set(["watched"], "first");
    const reader = kv.watch([["watched"], ["other"]]).getReader();
    expect((await reader.read()).value?.map((e) => e.value)).toEqual(["first", null]);
    await server.kv.set(["watched"], "from cellar");
    expect((await reader.read()).value?.map((e) => e.value)).toEqual(["from cellar", null]);
    await server.kv.delete(["watched"]);
    expect((await reader.read()).value?.map((e) => e.value)).toEqual([null, null]);
    await reader.cancel();
  });

  it("enqueues onto the namespace's default queue, which Cellar's listenQueue consumes", async () => {
    await kv.enqueue({ job: "welcome" }, { keysIfUndelivered: [["failed", "welcome"]] });
    const controller = new AbortController();
    const received: unknown[] = [];
    await server.kv.listenQueue(
      (value) => {
        received.push(value);
        controller.abort();
      },
      { signal: controller.signal },
    );
    expect(received).toEqual([{ job: "welcome" }]);
  });

  // Under Node, @deno/kv serializes with v8.serialize, which writes typed arrays inside a value as
  // Node host objects: Deno and Cellar's decoder cannot read those, @deno/kv itself can.
  it("round-trips values Cellar's decoder cannot read", async () => {
    await kv.set(["host-object"], { bytes: new Uint8Array([1]) });
    expect((await kv.get(["host-object"])).value).toEqual({ bytes: new Uint8Array([1]) });
    await expect(server.kv.get(["host-object"])).rejects.toThrow(/deserialize/);
  });

  it("opens a named namespace as its own database", async () => {
    const tenant = await openKv(`${server.url}/kv/tenant-a`, {
      accessToken: "any-token-on-loopback",
    });
    try {
      await tenant.set(["only"], "in tenant-a");
      expect((await server.kv.namespace("tenant-a").get(["only"])).value).toBe("in tenant-a");
      expect((await kv.get(["only"])).value).toBeNull();
      const keys = [];
      for await (const e of tenant.list({ prefix: [] })) keys.push(e.key);
      expect(keys).toEqual([["only"]]);
    } finally {
      tenant.close();
    }
  });
});
