/**
 * One database, three doors: values written through KV Connect (the Deno binary, `@deno/kv`)
 * read back through Cellar's own API and its HTTP API, and the reverse.
 */
import { type Kv as DenoKv, KvU64 as DenoKvU64, openKv } from "@deno/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import { coreOf } from "../../src/core/surface.js";
import { KvU64 } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";
import { denoSandbox, runDeno } from "./helpers.js";

describe("KV Connect and Cellar's own API share one database", () => {
  const sandbox = denoSandbox();
  let server: RunningServer;
  let client: DenoKv;

  const http = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${server.url}${path}`, init);
    return { status: res.status, json: await res.json() };
  };
  const stored = async (key: string[]) => {
    const start = encodeKey(["", ...key]);
    const { core, keyspace } = coreOf(server.kv);
    const [entries] = await core.read(
      [{ start, end: Buffer.concat([start, Buffer.of(0)]), limit: 1, reverse: false }],
      keyspace,
    );
    return entries![0]!.value;
  };

  beforeAll(async () => {
    server = await startServer({ db: ":memory:", port: 0 });
    client = await openKv(`${server.url}/kv`, { accessToken: "any-token-on-loopback" });
    await runDeno(sandbox.dir, `${server.url}/kv`, "values");
  }, 40_000);

  afterAll(async () => {
    client?.close();
    await server?.close();
    sandbox.dispose();
  });

  it("decodes every value Deno wrote with Cellar's API", async () => {
    const read = async (name: string) => (await server.kv.get(["values", name])).value;
    expect(await read("str")).toBe("héllo ✓");
    expect(Object.is(await read("negzero"), -0)).toBe(true);
    expect(await read("nan")).toBeNaN();
    expect(await read("big")).toBe(12345678901234567890n);
    expect(await read("date")).toEqual(new Date(1700000000000));
    expect(await read("regexp")).toEqual(/ab+c/gi);
    expect(await read("map")).toEqual(new Map([["k", { v: 1 }]]));
    expect(await read("set")).toEqual(new Set([1, "a"]));
    expect(await read("bytes")).toEqual(new Uint8Array([1, 2, 3]));
    expect(await read("int32")).toEqual(new Int32Array([-1, 2]));
    expect(new Uint8Array((await read("buffer")) as ArrayBuffer)).toEqual(
      new Uint8Array([1, 2, 3, 0, 0, 0, 0, 0]),
    );
    expect(await read("nested")).toEqual({ a: [1, { b: new Uint8Array([9]) }], c: new Date(0) });
    const sparse = (await read("sparse")) as unknown[];
    expect([sparse.length, 1 in sparse, sparse[2]]).toEqual([3, false, 3]);
    const error = (await read("error")) as Error;
    expect([error instanceof RangeError, error.message]).toEqual([true, "boom"]);
    const cyclic = (await read("cyclic")) as { self: unknown };
    expect(cyclic.self).toBe(cyclic);
    expect(await read("u64")).toEqual(new KvU64(5n));
    expect(await read("undef")).toBeUndefined();
  });

  it("keeps KV Connect's encodings: V8 (stored as format version 15), bytes, u64", async () => {
    const map = await stored(["values", "map"]);
    expect(map.encoding).toBe("v8");
    expect([...(map.data as Uint8Array).subarray(0, 2)]).toEqual([0xff, 0x0f]);
    expect((await stored(["values", "bytes"])).encoding).toBe("bytes");
    expect((await stored(["values", "u64"])).encoding).toBe("u64");
  });

  it("serves values Deno wrote over the HTTP API", async () => {
    expect((await http("/api/keys/values/map")).json.value).toEqual({ $map: [["k", { v: 1 }]] });
    expect((await http("/api/keys/values/date")).json.value).toEqual({
      $date: "2023-11-14T22:13:20.000Z",
    });
    expect((await http("/api/keys/values/big")).json.value).toEqual({
      $bigint: "12345678901234567890",
    });
    expect((await http("/api/keys/values/u64")).json.value).toEqual({ $u64: "5" });
  });

  it("reads through KV Connect what the HTTP API and Cellar's API wrote", async () => {
    const put = await http("/api/keys/from-http", {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        value: { plain: ["json", 1, true, null], when: { $date: "2020-01-01T00:00:00.000Z" } },
      }),
    });
    expect(put.status).toBe(200);
    await server.kv.set(["from-api", "json"], { nested: { list: [1, 2, 3] } });
    await server.kv.set(["from-api", "u64"], new KvU64(9n));
    await server.kv.set(["from-api", "v8"], new Map([[1n, new Set(["x"])]]));
    expect((await client.get(["from-http"])).value).toEqual({
      plain: ["json", 1, true, null],
      when: new Date("2020-01-01T00:00:00.000Z"),
    });
    expect((await client.get(["from-api", "json"])).value).toEqual({ nested: { list: [1, 2, 3] } });
    expect((await client.get(["from-api", "u64"])).value).toEqual(new DenoKvU64(9n));
    expect((await client.get(["from-api", "v8"])).value).toEqual(new Map([[1n, new Set(["x"])]]));
    const versionstamp = (await server.kv.get(["from-api", "json"])).versionstamp;
    expect((await client.get(["from-api", "json"])).versionstamp).toBe(versionstamp);
  });

  it("keeps namespaces apart: /kv/{namespace} is the namespace's keys and nothing else", async () => {
    const tenant = await openKv(`${server.url}/kv/tenant-b`, {
      accessToken: "any-token-on-loopback",
    });
    try {
      await tenant.set(["k"], "tenant-b");
      await server.kv.set(["k"], "default");
      expect((await server.kv.namespace("tenant-b").get(["k"])).value).toBe("tenant-b");
      expect(
        (await http("/api/keys/k", { headers: { "x-cellar-namespace": "tenant-b" } })).json.value,
      ).toBe("tenant-b");
      expect((await client.get(["k"])).value).toBe("default");
      const keys = [];
      for await (const e of tenant.list({ prefix: [] })) keys.push(e.key);
      expect(keys).toEqual([["k"]]);
    } finally {
      tenant.close();
    }
  });
});
