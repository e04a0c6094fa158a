/** Bearer tokens, access levels and namespaces chosen by token, header or host. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { type RunningServer, startServer, type TokenGrant } from "../../src/server/index.js";
import {
  A_WRITER,
  ADMIN,
  expectError,
  hostileServer,
  json,
  rawExchange,
  type Send,
  send,
  serve,
  valueAt,
} from "./helpers.js";

describe("authentication and namespaces", () => {
  const tokens: TokenGrant[] = [
    { token: "admin-token-0000000000", namespaces: ["*"], access: "admin" },
    { token: "read-a-token-000000000", namespaces: ["a"], access: "read" },
    { token: "write-a-token-00000000", namespaces: ["a"], access: "write" },
    { token: "write-b-token-00000000", namespaces: ["b"], access: "write" },
    { token: "write-ab-token-0000000", namespaces: ["a", "b"], access: "write" },
  ];
  const [admin, readA, writeA, writeB, writeAB] = tokens.map((t) => t.token) as [
    string,
    string,
    string,
    string,
    string,
  ];
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({ tokens });
  });
  afterAll(() => server.close());

  const put = (token: string, path: string, value: unknown, options: Send = {}) =>
    send(server.url, `/api/keys/${path}`, { method: "PUT", body: { value }, token, ...options });

  it("refuses requests without a valid bearer token (401 UNAUTHORIZED)", async () => {
    expectError(await send(server.url, "/api/keys/x"), 401, "UNAUTHORIZED");
    expectError(
      await send(server.url, "/api/keys/x", { token: "not-a-valid-token-at-all" }),
      401,
      "UNAUTHORIZED",
    );
    expectError(
      await send(server.url, "/api/keys/x", { headers: { authorization: `Basic ${admin}` } }),
      401,
      "UNAUTHORIZED",
    );
    expectError(await send(server.url, "/api/list"), 401, "UNAUTHORIZED");
    expectError(
      await send(server.url, "/api/atomic", { body: { mutations: [] } }),
      401,
      "UNAUTHORIZED",
    );
    expectError(await send(server.url, `/api/watch?key=x`), 401, "UNAUTHORIZED");
    expectError(await send(server.url, "/api/driver/info"), 401, "UNAUTHORIZED");
    expect((await send(server.url, "/healthz")).status).toBe(200);
    expect((await send(server.url, "/readyz")).status).toBe(200);
  });

  it("takes the token from ?token= too, for EventSource clients", async () => {
    expect((await send(server.url, `/api/keys/x?token=${writeA}`)).status).toBe(200);
  });

  it("lets a read token read but not write (403 FORBIDDEN)", async () => {
    expect((await put(writeA, "shared", "from a")).status).toBe(200);
    expect(await valueAt(server.url, "shared", { token: readA })).toBe("from a");
    expectError(await put(readA, "shared", "overwrite"), 403, "FORBIDDEN");
    expectError(
      await send(server.url, "/api/atomic", {
        token: readA,
        body: { mutations: [{ type: "delete", key: ["shared"] }] },
      }),
      403,
      "FORBIDDEN",
    );
    expectError(
      await send(server.url, "/api/keys/shared", { method: "DELETE", token: readA }),
      403,
      "FORBIDDEN",
    );
    expect(await valueAt(server.url, "shared", { token: readA })).toBe("from a");
  });

  it("confines a token to its namespace", async () => {
    expect((await put(writeA, "same", "A")).status).toBe(200);
    expect((await put(writeB, "same", "B")).status).toBe(200);
    expect(await valueAt(server.url, "same", { token: writeA })).toBe("A");
    expect(await valueAt(server.url, "same", { token: writeB })).toBe("B");
    expect((await server.kv.namespace("a").get(["same"])).value).toBe("A");
    expect((await server.kv.get(["same"])).value).toBeNull();

    const listed = await send(server.url, "/api/list", { token: writeB });
    expect(listed.json.entries.map((e: { value: unknown }) => e.value)).toEqual(["B"]);

    expectError(
      await send(server.url, "/api/keys/same", { token: writeA, namespace: "b" }),
      403,
      "FORBIDDEN",
    );
    expectError(await put(writeA, "same", "sneaky", { namespace: "b" }), 403, "FORBIDDEN");
    expect((await server.kv.namespace("b").get(["same"])).value).toBe("B");
  });

  it("makes a token of several namespaces name one with X-Cellar-Namespace", async () => {
    expectError(await send(server.url, "/api/keys/same", { token: writeAB }), 403, "FORBIDDEN");
    expect(await valueAt(server.url, "same", { token: writeAB, namespace: "b" })).toBe("B");
    expectError(
      await send(server.url, "/api/keys/same", { token: writeAB, namespace: "c" }),
      403,
      "FORBIDDEN",
    );
    expect(await valueAt(server.url, "same", { token: admin, namespace: "a" })).toBe("A");
  });

  it("needs an admin token to empty a namespace", async () => {
    expectError(
      await send(server.url, "/api/namespace", { method: "DELETE", token: writeA }),
      403,
      "FORBIDDEN",
    );
    const doomed = server.kv.namespace("doomed");
    await doomed.set(["x"], 1);
    await doomed.queue("jobs").enqueue("pending");
    const reply = await send(server.url, "/api/namespace", {
      method: "DELETE",
      token: admin,
      namespace: "doomed",
    });
    expect([reply.status, reply.json]).toEqual([200, { deleted: 1 }]);
    expect(await doomed.queue("jobs").stats()).toMatchObject({ pending: 0 });
    expect(await doomed.history(["x"])).toEqual([]);
  });

  it("lets the remote client in with a valid token, and refuses a wrong one with UNAUTHORIZED", async () => {
    const kv = await openKv(server.url, { token: writeA });
    try {
      await kv.set(["remote"], new Map([["ok", 1n]]));
      expect((await kv.get(["remote"])).value).toEqual(new Map([["ok", 1n]]));
      expect((await server.kv.namespace("a").get(["remote"])).value).toEqual(new Map([["ok", 1n]]));
    } finally {
      await kv.close();
    }
    await expect(openKv(server.url, { token: "wrong-token-0000000000" })).rejects.toMatchObject({
      name: "KvError",
      code: "UNAUTHORIZED",
    });
    await expect(openKv(server.url)).rejects.toMatchObject({ code: "UNAUTHORIZED" });

    const reader = await openKv(server.url, { token: readA });
    try {
      await expect(reader.set(["remote"], 2)).rejects.toMatchObject({ code: "FORBIDDEN" });
    } finally {
      await reader.close();
    }
  });

  it("maps the Host header to the namespace with namespaceFrom: host", async () => {
    const byHost = await serve({ namespaceFrom: "host" });
    try {
      const write = await send(byHost.url, "/api/keys/k", {
        method: "PUT",
        body: { value: "tenant" },
        headers: { host: "Tenant-A.example.com:8080" },
      });
      expect(write.status, write.text).toBe(200);
      expect((await byHost.kv.namespace("tenant-a.example.com").get(["k"])).value).toBe("tenant");
      expect(await valueAt(byHost.url, "k", { headers: { host: "tenant-a.example.com" } })).toBe(
        "tenant",
      );
      expect(
        await valueAt(byHost.url, "k", { headers: { host: "tenant-b.example.com" } }),
      ).toBeNull();
      // The header does not override the host.
      expect(
        await valueAt(byHost.url, "k", {
          headers: { host: "tenant-b.example.com" },
          namespace: "tenant-a.example.com",
        }),
      ).toBeNull();
    } finally {
      await byHost.close();
    }
  });

  it("refuses a Host that is not one host name when it chooses the namespace", async () => {
    const byHost = await serve({ namespaceFrom: "host" });
    try {
      const bad = await send(byHost.url, "/api/keys/k", { headers: { host: "a b.example.com" } });
      expectError(bad, 400, "INVALID_REQUEST");
      expect(bad.json.error.message).toContain("Host header or target is malformed");
      // Two Host headers: each path through the server sees them joined, or refuses them.
      const twice = await rawExchange(
        byHost.url,
        "GET /api/keys/k HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nConnection: close\r\n\r\n",
      );
      expect(twice.status).toMatch(/^HTTP\/1\.1 400 /);
      expect(twice.body.error.message).toContain(
        '"a.example.com, b.example.com" is not one host name',
      );
      expect(await byHost.kv.namespace("a.example.com").get(["k"])).toMatchObject({ value: null });
    } finally {
      await byHost.close();
    }
  });

  it("takes the namespace from X-Cellar-Namespace with namespaceFrom: header", async () => {
    const byHeader = await serve({ namespaceFrom: "header" });
    try {
      const put = (value: string, options: Send = {}) =>
        send(byHeader.url, "/api/keys/k", { method: "PUT", body: { value }, ...options });
      expect((await put("h1", { namespace: "h1" })).status).toBe(200);
      expect((await put("root")).status).toBe(200);
      expect((await byHeader.kv.namespace("h1").get(["k"])).value).toBe("h1");
      expect((await byHeader.kv.get(["k"])).value).toBe("root");
      expect(await valueAt(byHeader.url, "k", { namespace: "h2" })).toBeNull();
    } finally {
      await byHeader.close();
    }
  });

  it("refuses to listen on a non-loopback host without tokens unless insecure", async () => {
    await expect(startServer({ db: ":memory:", host: "0.0.0.0", port: 0 })).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/refusing to listen on 0\.0\.0\.0/),
    });
    for (const options of [{ insecure: true }, { tokens }]) {
      const open = await startServer({ db: ":memory:", host: "0.0.0.0", port: 0, ...options });
      await open.close();
    }
  });
});

describe("malformed and hostile requests", () => {
  const { refused } = hostileServer();

  describe("authentication and namespaces", () => {
    it("refuses missing, empty and garbage tokens with 401", async () => {
      for (const authorization of [
        "",
        "Bearer",
        "Bearer ",
        `Basic ${ADMIN}`,
        `Bearer ${"x".repeat(10_000)}`,
        `Bearer ${ADMIN}x`,
        `Bearer ${ADMIN.slice(1)}`,
      ]) {
        await refused(
          "/api/keys/existing",
          { token: "", headers: { authorization } },
          401,
          "UNAUTHORIZED",
        );
      }
      await refused(
        "/api/keys/k",
        { token: "", method: "PUT", ...json({ value: 1 }) },
        401,
        "UNAUTHORIZED",
      );
    });

    it("refuses invalid and foreign namespaces", async () => {
      await refused("/api/keys/x", { namespace: "$system" }, 400, "INVALID_ARGUMENT");
      await refused("/api/keys/x", { namespace: "n".repeat(257) }, 400, "INVALID_ARGUMENT");
      await refused("/api/keys/x", { token: A_WRITER, namespace: "b" }, 403, "FORBIDDEN");
      await refused(
        "/api/keys/x",
        { token: A_WRITER, namespace: "b", method: "PUT", ...json({ value: 1 }) },
        403,
        "FORBIDDEN",
      );
      await refused("/api/namespace", { token: A_WRITER, method: "DELETE" }, 403, "FORBIDDEN");
    });
  });
});
