/** Ranges: GET and POST /api/list, /api/count, /api/delete-range, DELETE /api/namespace. */
import { beforeAll, describe, expect, it } from "vitest";
import { apiServer, hostileServer, json, q, query, type Reply, raw, scoped } from "./helpers.js";

describe("HTTP API", () => {
  const server = apiServer();

  describe("ranges", () => {
    const api = scoped(server, "ranges");
    beforeAll(async () => {
      const mutations = Array.from({ length: 25 }, (_, i) => ({
        type: "set",
        key: ["items", i],
        value: i,
      }));
      await api.atomic({ mutations: [...mutations, { type: "set", key: ["other"], value: "x" }] });
    });

    const pages = async (first: (cursor: string | null) => Promise<Reply>) => {
      const seen: unknown[][] = [];
      let cursor: string | null = null;
      do {
        const reply = await first(cursor);
        expect(reply.status, reply.text).toBe(200);
        seen.push(reply.json.entries.map((e: { value: unknown }) => e.value));
        expect(reply.json.hasMore).toBe(reply.json.cursor !== null);
        cursor = reply.json.cursor;
      } while (cursor !== null);
      return seen;
    };
    const range = (from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => from + i);

    it("pages through a prefix with GET /api/list until the cursor is null", async () => {
      const seen = await pages((cursor) =>
        api.call(`/api/list${query({ prefix: "items", limit: "10", ...(cursor && { cursor }) })}`),
      );
      expect(seen).toEqual([range(0, 10), range(10, 20), range(20, 25)]);
    });

    it("ends on a full last page with a null cursor", async () => {
      const seen = await pages((cursor) =>
        api.call(`/api/list${query({ prefix: "items", limit: "5", ...(cursor && { cursor }) })}`),
      );
      expect(seen).toHaveLength(5);
    });

    it("pages in reverse", async () => {
      const seen = await pages((cursor) =>
        api.call(
          `/api/list${query({ prefix: "items", limit: "20", reverse: "true", ...(cursor && { cursor }) })}`,
        ),
      );
      expect(seen).toEqual([range(5, 25).reverse(), range(0, 5).reverse()]);
    });

    it("lists start/end and prefix/start ranges given as key paths", async () => {
      const between = await api.call(
        `/api/list${query({ start: "items/~n:5", end: "items/~n:8" })}`,
      );
      expect(between.json.entries.map((e: { key: unknown }) => e.key)).toEqual([
        ["items", 5],
        ["items", 6],
        ["items", 7],
      ]);
      const after = await api.call(`/api/list${query({ prefix: "items", start: "items/~n:22" })}`);
      expect(after.json.entries.map((e: { value: unknown }) => e.value)).toEqual([22, 23, 24]);
      const everything = await api.call("/api/list?limit=100&metadata=true");
      expect(everything.json.entries).toHaveLength(26);
      expect(everything.json.entries[0].metadata.version).toBe(1);
    });

    it("pages with POST /api/list and JSON keys", async () => {
      const seen = await pages((cursor) =>
        api.call("/api/list", {
          body: { prefix: ["items"], limit: 7, reverse: true, ...(cursor && { cursor }) },
        }),
      );
      expect(seen.flat()).toEqual(range(0, 25).reverse());
      const between = await api.call("/api/list", {
        body: { start: ["items", 3], end: ["items", 5], metadata: true },
      });
      expect(between.json.entries.map((e: { value: unknown }) => e.value)).toEqual([3, 4]);
      expect(between.json.entries[0].metadata).toHaveProperty("dataHash");
    });

    it("counts with GET and POST /api/count", async () => {
      expect((await api.call("/api/count?prefix=items")).json).toEqual({ count: 25 });
      expect((await api.call("/api/count")).json).toEqual({ count: 26 });
      expect(
        (await api.call(`/api/count${query({ start: "items/~n:0", end: "items/~n:10" })}`)).json,
      ).toEqual({ count: 10 });
      expect(
        (await api.call("/api/count", { body: { prefix: ["items"], start: ["items", 20] } })).json,
      ).toEqual({ count: 5 });
      expect((await api.call("/api/count", { body: {} })).json).toEqual({ count: 26 });
    });
  });

  describe("deleting ranges and namespaces", () => {
    const api = scoped(server, "deletes");

    it("deletes a prefix and a start/end range with POST /api/delete-range", async () => {
      await api.atomic({
        mutations: Array.from({ length: 10 }, (_, i) => ({ type: "set", key: ["d", i], value: i })),
      });
      await api.put("keep", { value: 1 });
      const some = await api.call("/api/delete-range", {
        body: { start: ["d", 0], end: ["d", 3] },
      });
      expect(some.json).toEqual({ deleted: 3 });
      const rest = await api.call("/api/delete-range", { body: { prefix: ["d"] } });
      expect(rest.json).toEqual({ deleted: 7 });
      expect(await api.kv().count({ prefix: [] })).toBe(1);
    });

    it("empties only the request's namespace with DELETE /api/namespace", async () => {
      await api.put("a", { value: 1 });
      await api.put("b", { value: 2 });
      await server().kv.namespace("bystander").set(["a"], "stays");
      const reply = await api.call("/api/namespace", { method: "DELETE" });
      expect(reply.status).toBe(200);
      expect(reply.json.deleted).toBeGreaterThanOrEqual(2);
      expect(await api.kv().count({ prefix: [] })).toBe(0);
      expect((await server().kv.namespace("bystander").get(["a"])).value).toBe("stays");
    });
  });
});

describe("malformed and hostile requests", () => {
  const { refused } = hostileServer();

  describe("ranges", () => {
    it("refuses limits above maxPageSize and malformed limits", async () => {
      for (const limit of [
        "51",
        "1000000000",
        "99999999999999999999",
        "0",
        "-1",
        "1.5",
        "abc",
        "1e400",
      ]) {
        await refused(`/api/list?limit=${limit}`, {}, 400, ["INVALID_ARGUMENT", "INVALID_REQUEST"]);
      }
      await refused("/api/list?limit=1&limit=2", {}, 400, "INVALID_REQUEST");
      for (const limit of [51, 1e9, 0, -1, 1.5, "10"]) {
        await refused("/api/list", json({ limit }), 400, ["INVALID_ARGUMENT", "INVALID_REQUEST"]);
      }
      await refused("/api/list", raw('{"limit":1e400}'), 400, [
        "INVALID_ARGUMENT",
        "INVALID_REQUEST",
      ]);
      for (const limit of ["0", "10001", "x"])
        await refused(`/api/history/existing?limit=${limit}`, {}, 400, "INVALID_REQUEST");
    });

    it("refuses bad cursors with INVALID_CURSOR", async () => {
      await refused(
        `/api/list?prefix=items&cursor=${q("not a cursor!")}`,
        {},
        400,
        "INVALID_CURSOR",
      );
      await refused("/api/list", json({ prefix: ["items"], cursor: "@@@" }), 400, "INVALID_CURSOR");
      await refused("/api/list?prefix=items&reverse=true&cursor=_____w", {}, 400, "INVALID_CURSOR");
      await refused("/api/list", json({ prefix: ["items"], cursor: 5 }), 400, "INVALID_REQUEST");
    });

    it("refuses malformed selectors", async () => {
      await refused("/api/list", json({ start: ["a"] }), 400, "INVALID_SELECTOR");
      await refused("/api/list", json({ start: ["b"], end: ["a"] }), 400, "INVALID_SELECTOR");
      await refused(
        "/api/list",
        json({ prefix: ["items"], start: ["other"] }),
        400,
        "INVALID_SELECTOR",
      );
      await refused("/api/list?start=items", {}, 400, "INVALID_SELECTOR");
      await refused("/api/list?reverse=maybe", {}, 400, "INVALID_REQUEST");
      await refused("/api/list?prefix=a&prefix=b", {}, 400, "INVALID_REQUEST");
      await refused("/api/count", json({ end: ["a"] }), 400, "INVALID_SELECTOR");
      await refused("/api/delete-range", json({}), 400, "INVALID_SELECTOR");
      await refused("/api/delete-range", json({ end: ["z"] }), 400, "INVALID_SELECTOR");
      await refused("/api/delete-range", json({ start: ["a"] }), 400, "INVALID_SELECTOR");
    });
  });
});
