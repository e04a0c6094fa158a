/** Where filters over HTTP: POST /api/list and /api/count with `where`. */
import { beforeAll, describe, expect, it } from "vitest";
import { apiServer, scoped, stored } from "./helpers.js";

describe("HTTP API", () => {
  const server = apiServer();

  describe("where filters", () => {
    const api = scoped(server, "where");
    beforeAll(async () => {
      const people = [
        { name: "Ada", age: 36, city: "London" },
        { name: "Alan", age: 41, city: "Wilmslow" },
        { name: "Grace", age: 85, address: { city: "Arlington" } },
      ];
      const mutations = people.map((value, i) => ({ type: "set", key: ["people", i], value }));
      const reply = await api.atomic({
        mutations: [
          ...mutations,
          { type: "set", key: ["people", 3], value: { name: "Linus", age: { $bigint: "55" } } },
        ],
      });
      expect(reply.status, reply.text).toBe(200);
    });

    const names = (reply: { json: { entries: { value: { name: string } }[] } }) =>
      reply.json.entries.map((e) => e.value.name);

    it("lists and counts only the entries whose value matches, with full pages", async () => {
      const list = await api.call("/api/list", {
        body: { prefix: ["people"], where: { age: { $gte: 40 } } },
      });
      expect(list.status, list.text).toBe(200);
      expect(names(list)).toEqual(["Alan", "Grace", "Linus"]);
      const first = await api.call("/api/list", {
        body: { prefix: ["people"], where: { name: { $istartsWith: "a" } }, limit: 1 },
      });
      expect(names(first)).toEqual(["Ada"]);
      const second = await api.call("/api/list", {
        body: {
          prefix: ["people"],
          where: { name: { $istartsWith: "a" } },
          limit: 1,
          cursor: first.json.cursor,
        },
      });
      expect(names(second)).toEqual(["Alan"]);
      const count = await api.call("/api/count", {
        body: { prefix: ["people"], where: { "address.city": { $exists: true } } },
      });
      expect(count.json).toEqual({ count: 1 });
    });

    it("takes operands JSON cannot carry as tagged values", async () => {
      const reply = await api.call("/api/list", {
        body: { prefix: ["people"], where: { age: { $gt: { $bigint: "50" }, $lt: 60 } } },
      });
      expect(names(reply)).toEqual(["Linus"]);
      const now = await api.call("/api/count", {
        body: { prefix: ["people"], where: { age: { $lt: { $now: 0 } } } },
      });
      expect(now.json).toEqual({ count: 4 });
    });

    it("stores a remote client's JSON text as the server would write it, so filters read one value", async () => {
      const key = stored("where", "people", "dup");
      const written = await api.call("/api/driver/write", {
        body: {
          writes: [
            {
              checks: [],
              mutations: [
                { t: "set", k: key, v: { e: "json", d: '{ "name": "x", "name": "Dup" }' } },
              ],
            },
          ],
        },
      });
      expect(written.status, written.text).toBe(200);
      const read = await api.call("/api/driver/read", {
        body: { ranges: [{ start: key, end: `${key}AA`, limit: 1, reverse: false }] },
      });
      expect(read.json.results[0][0].v).toEqual({ e: "json", d: '{"name":"Dup"}' });
      const count = await api.call("/api/count", {
        body: { prefix: ["people"], where: { name: "Dup" } },
      });
      expect(count.json).toEqual({ count: 1 });
    });

    it("answers a malformed filter with 400 INVALID_FILTER naming the part", async () => {
      for (const [where, part] of [
        [{ age: { $near: 1 } }, "where.age.$near"],
        [{ "a..b": 1 }, "empty segment"],
        [{ name: { $in: "Ada" } }, "$in"],
        [{ "x'); DROP TABLE cellar_kv; --": { $gt: {} } }, "$gt"],
      ] as const) {
        const reply = await api.call("/api/list", { body: { prefix: ["people"], where } });
        expect(reply.status, reply.text).toBe(400);
        expect(reply.json.error.code).toBe("INVALID_FILTER");
        expect(reply.json.error.message).toContain(part);
      }
      const notObject = await api.call("/api/count", { body: { prefix: ["people"], where: [1] } });
      expect(notObject.status).toBe(400);
    });
  });
});
