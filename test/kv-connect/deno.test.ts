/**
 * Deno itself, over KV Connect, against a Cellar server: `Deno.openKv("http://…/kv")` with the
 * real `deno` binary (HTTP/2 cleartext), one child process per server.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KvU64 } from "../../src/index.js";
import { type RunningServer, startServer } from "../../src/server/index.js";
import { denoSandbox, runDeno } from "./helpers.js";

// biome-ignore lint/suspicious/noExplicitAny: the child's JSON is inspected field by field
type Observed = Record<string, any>;

describe.each(["memory", "sqlite"])("Deno.openKv against Cellar (%s)", (storage) => {
  const sandbox = denoSandbox();
  let server: RunningServer;
  let seen: Observed;

  beforeAll(async () => {
    const db = storage === "memory" ? ":memory:" : join(sandbox.dir, "cellar.db");
    server = await startServer({ db, port: 0 });
    await server.kv.set(["from-cellar", "json"], { a: [1, "two"], b: null });
    await server.kv.set(["from-cellar", "u64"], new KvU64(7n));
    await server.kv.set(["from-cellar", "bytes"], new Uint8Array([5, 6]));
    await server.kv.set(["from-cellar", "date"], new Date(0));
    seen = await runDeno(sandbox.dir, `${server.url}/kv`, "crud,list,atomic,watch,large");
  }, 40_000);

  afterAll(async () => {
    await server?.close();
    sandbox.dispose();
  });

  it("sets, gets, getMany and deletes every kind of value", () => {
    const { read, many, afterDelete, versionstamps } = seen.crud;
    expect(read.str.value).toBe("héllo ✓");
    expect(read.num.value).toBe(3.5);
    expect(read.big.value).toEqual({ $bigint: "12345678901234567890" });
    expect(read.bytes.value).toEqual({ $bytes: [0, 1, 255] });
    expect(read.u64.value).toEqual({ $u64: "42" });
    expect(read.date.value).toEqual({ $date: "2023-11-14T22:13:20.000Z" });
    expect(read.map.value).toEqual({ $map: [["k", { v: [1, 2] }]] });
    expect(read.set.value).toEqual({ $set: [1, "a"] });
    expect(read.obj.value).toEqual({ a: [1, { b: null }], c: true });
    expect(read.undef.value).toEqual({ $undefined: true });
    expect(read.str.versionstamp).toBe(versionstamps.str);
    expect(many.map((e: Observed) => e.value)).toEqual([
      "héllo ✓",
      null,
      { a: [1, "two"], b: null },
    ]);
    expect(afterDelete).toEqual({ key: ["crud", "str"], value: null, versionstamp: null });
  });

  it("reads what Cellar's own API wrote (JSON arrives as a V8 value)", () => {
    expect(seen.crud.fromCellar).toEqual({
      json: { a: [1, "two"], b: null },
      u64: { $u64: "7" },
      bytes: { $bytes: [5, 6] },
      date: { $date: "1970-01-01T00:00:00.000Z" },
    });
  });

  it("lists with every selector, limit, reverse and cursor", () => {
    const l = (...ids: number[]) => ids.map((i) => ["l", i]);
    const { list } = seen;
    expect(list.prefix).toEqual(l(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    expect(list.prefixStart).toEqual(l(7, 8, 9));
    expect(list.prefixEnd).toEqual(l(0, 1, 2));
    expect(list.startEnd).toEqual(l(2, 3, 4));
    expect(list.limit).toEqual(l(0, 1, 2));
    expect(list.reverse).toEqual(l(9, 8, 7, 6));
    expect(list.smallBatches).toEqual(list.prefix);
    expect(list.afterCursor).toEqual(l(4, 5, 6));
    expect(list.afterCursorReverse).toEqual(l(5, 4, 3, 2, 1, 0));
    expect(list.everything).toContainEqual(["l"]);
    expect(list.everything).toContainEqual(["m", 0]);
  });

  it("applies checks, sum/min/max and refuses sum on a non-u64", () => {
    const { atomic } = seen;
    expect(atomic.ok.ok).toBe(true);
    expect(atomic.stale).toEqual({ ok: false });
    expect(atomic.absentOk).toBe(true);
    expect(atomic.absentFails).toBe(false);
    expect(atomic.value).toBe(11);
    expect(atomic.numbers).toEqual({
      sum: { $u64: "12" },
      min: { $u64: "4" },
      max: { $u64: "8" },
      wrap: { $u64: "1" },
    });
    expect(atomic.sumOnString).toMatch(/400|KvU64|u64/);
  });

  it("suffixes versionstamped keys with the commit's versionstamp, as a string part", async () => {
    const { stamped, stamped2, log } = seen.atomic;
    expect(log.map((e: Observed) => e.key)).toEqual([
      ["log", stamped.versionstamp],
      ["log", stamped2.versionstamp],
    ]);
    expect(log.map((e: Observed) => e.versionstamp)).toEqual([
      stamped.versionstamp,
      stamped2.versionstamp,
    ]);
    expect((await server.kv.get(["log", stamped.versionstamp])).value).toBe("first");
  });

  it("expires entries at expire_at_ms", () => {
    const { beforeExpiry, afterExpiry } = seen.atomic;
    expect(beforeExpiry.value).toBe("gone soon");
    expect(afterExpiry.short.value).toBeNull();
    expect(afterExpiry.long.value).toBe("stays");
    expect(afterExpiry.listed).toEqual([["exp", "long"]]);
  });

  it("watches keys: the current state, each change, and an expiry", () => {
    const values = seen.watch.frames.map((frame: Observed[]) => frame.map((e) => e.value));
    expect(values).toEqual([
      ["a0", null],
      ["a0", "b1"],
      ["a1", "b1"],
      [null, "b1"],
    ]);
  });

  it("round-trips 60 KB values and refuses values over the limit", () => {
    expect(seen.large.textOk).toBe(true);
    expect(seen.large.bytesOk).toBe(true);
    expect(seen.large.tooLarge).toBeTruthy();
  });
});

describe("Deno.openKv against a Cellar server with tokens", () => {
  const sandbox = denoSandbox();
  let server: RunningServer;

  beforeAll(async () => {
    const file = join(sandbox.dir, "tokens.json");
    writeFileSync(
      file,
      JSON.stringify({
        tokens: [
          { token: "tenant-a-secret-token", namespaces: ["tenant-a"], access: "write" },
          { token: "read-only-secret-token", namespaces: ["tenant-a"], access: "read" },
        ],
      }),
    );
    server = await startServer({ db: ":memory:", port: 0, tokensFile: file });
    await server.kv.namespace("tenant-a").set(["t"], "seeded in tenant-a");
  });

  afterAll(async () => {
    await server?.close();
    sandbox.dispose();
  });

  it("refuses a wrong token, confines a token to its namespace and its access", async () => {
    const seen: Observed = await runDeno(sandbox.dir, server.url, "tokens");
    expect(seen.wrong.error).toMatch(/401|not valid/);
    expect(seen.right).toEqual({ read: "seeded in tenant-a", write: true });
    expect(seen.otherNamespace.error).toMatch(/403|may not use namespace/);
    expect(seen.readOnly.read).toBe("right");
    expect(seen.readOnly.write).toMatch(/403|read access/);
    expect((await server.kv.namespace("tenant-a").get(["t"])).value).toBe("right");
    expect((await server.kv.get(["t"])).value).toBeNull();
  });
});
