/** What no route takes: unparsable requests, unknown paths, wrong methods. */
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { ADMIN, expectRefused, hostileServer, rawExchange, snapshot } from "./helpers.js";

describe("malformed and hostile requests", () => {
  const { server, call, refused } = hostileServer();

  describe("routes and methods", () => {
    it("answers what node cannot parse with a JSON error, and changes nothing", async () => {
      const before = await snapshot(server().kv);
      const long = await rawExchange(
        server().url,
        `PUT /api/keys/a?comment=${"x".repeat(20_000)} HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"value":"a"}`,
      );
      expect(long.status).toBe("HTTP/1.1 431 Request Header Fields Too Large");
      expect(long.body).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
      const garbage = await rawExchange(server().url, "NOT HTTP AT ALL\r\n\r\n");
      expect(garbage.status).toBe("HTTP/1.1 400 Bad Request");
      expect(garbage.body).toMatchObject({ error: { code: "INVALID_REQUEST" } });
      expect(await snapshot(server().kv)).toEqual(before);
    });

    it("closes, without writing into it, a stream that garbage is pipelined behind", async () => {
      const seen = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(server().url).port), "127.0.0.1", () =>
          socket.write(
            `GET /api/watch?key=a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`,
          ),
        );
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
          if (text.includes("event: entries")) socket.write("GARBAGE\r\n\r\n");
        });
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
      });
      expect(seen).toMatch(/^HTTP\/1\.1 200 /);
      expect(seen).toContain("event: entries");
      expect(seen).not.toContain("HTTP/1.1 400");
    });

    it("answers unknown routes with 404 NOT_FOUND", async () => {
      for (const path of [
        "/api/nope",
        "/nope",
        // "/" is the admin UI (test/ui/admin-ui.test.ts).
        "/api",
        // "/api/keys" without a key is the seed's list (seed-compat.test.ts).
        "/api/keys/",
        "/api/driver/nope",
        "/api/docs/nope.css",
        "/api/history/",
      ]) {
        await refused(path, {}, 404, "NOT_FOUND");
      }
    });

    it("answers wrong methods with 405 and the methods the path takes", async () => {
      for (const [method, path] of [
        ["POST", "/api/keys/x"],
        ["GET", "/api/atomic"],
        ["PUT", "/api/list"],
        ["DELETE", "/api/list"],
        ["GET", "/api/delete-range"],
        ["GET", "/api/get"],
        ["POST", "/api/watch"],
        ["GET", "/api/driver/read"],
        ["GET", "/api/driver/write"],
        ["POST", "/healthz"],
        ["DELETE", "/api/openapi.json"],
        ["GET", "/api/namespace"],
      ] as const) {
        const reply = await call(path, { method });
        expectRefused(reply, 405, "METHOD_NOT_ALLOWED");
        expect(reply.headers.allow).toMatch(/^(GET|POST|PUT|PATCH|DELETE)(, [A-Z]+)*$/);
        expect(reply.headers.allow).not.toContain(method);
      }
    });
  });
});
