/**
 * The fast path must answer exactly as Hono does: each request goes to a server with the fast
 * path in front of Hono and to one with Hono alone, over the same app, and the answers compare.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import { type AppOptions, createApp } from "./app.js";

const READER = "reader-token-0123456789";
const WRITER = "writer-token-0123456789";
const WIDE = "wide-token-000123456789";

interface Answer {
  readonly status: number;
  readonly type: string | undefined;
  readonly length: string | undefined;
  readonly body: string;
}

/** Header fields by name, or raw name-value pairs (to send a header twice). */
type Headers = Record<string, string | string[]> | string[];

function send(port: number, target: string, headers: Headers, method = "GET"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { host: "127.0.0.1", port, path: target, headers, method, agent: false };
    const req = request(options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers["content-type"],
          length: res.headers["content-length"],
          body,
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
}

/** Two servers over one app, and how many requests the fast path took. */
async function pair(kv: Kv, options: AppOptions) {
  const { app, fastPath } = createApp(kv, options);
  const hono = getRequestListener(app.fetch, { hostname: "127.0.0.1" });
  let taken = 0;
  const fast = createServer((req, res) => {
    if (fastPath(req, res)) taken++;
    else void hono(req, res);
  });
  const plain = createServer((req, res) => void hono(req, res));
  const [fastPort, plainPort] = [await listen(fast), await listen(plain)];
  return {
    taken: () => taken,
    both: (target: string, headers: Headers = {}, method = "GET") =>
      Promise.all([
        send(fastPort, target, headers, method),
        send(plainPort, target, headers, method),
      ]),
    close: () => {
      fast.close();
      plain.close();
    },
  };
}

const TARGETS = [
  "/api/keys/users/1",
  "/api/keys/users/~n:1",
  "/api/keys/users/1?metadata=true",
  "/api/keys/users/1?metadata=1",
  "/api/keys/users/1?metadata=0",
  "/api/keys/users/1?metadata",
  "/api/keys/users/1?metadata=",
  "/api/keys/users/1?metadata=yes",
  "/api/keys/users/1?metadata=1&metadata=yes",
  "/api/keys/users/1?other=1&metadata=true",
  "/api/keys/users/1?metadata=%31",
  "/api/keys/users/1?",
  "/api/keys/a%2Fb",
  "/api/keys/%E2%9C%93",
  "/api/keys/users/./1",
  "/api/keys/users/%2e%2e/users/1",
  "/api/keys/users/~x:zz",
  "/api/keys/users/~n:abc",
  "/api/keys/~t",
  "/api/keys/",
  "/api/keys//users",
  "/api/keys/users/1/",
  "/api/keys/missing",
  "/api/keys/users/1#x",
  "/api/keys/users/%zz",
];

describe("the fast path of GET /api/keys/{key}", () => {
  let kv: Kv;
  beforeAll(async () => {
    kv = await openKv(":memory:");
    await kv.set(["users", "1"], { name: "Ada", since: new Date(0), big: 12n });
    await kv.set(["users", 1], "number one");
    await kv.set(["a/b"], "slash");
    await kv.set(["✓"], "tick");
    await kv.set([true], "yes");
    await kv.namespace("tenant-a").set(["users", "1"], "in a");
    await kv.namespace("tenant-a.example.com").set(["users", "1"], "by host");
  });
  afterAll(() => kv.close());

  it("answers as Hono does without tokens", async () => {
    const servers = await pair(kv, {});
    try {
      for (const target of TARGETS) {
        const [fast, plain] = await servers.both(target);
        expect(fast, target).toEqual(plain);
      }
      for (const namespace of ["tenant-a", "Bad Name", ""]) {
        const [fast, plain] = await servers.both("/api/keys/users/1", {
          "x-cellar-namespace": namespace,
        });
        expect(fast, namespace).toEqual(plain);
      }
      expect(servers.taken()).toBeGreaterThan(TARGETS.length / 2);
    } finally {
      servers.close();
    }
  });

  it("answers as Hono does with scoped tokens", async () => {
    const servers = await pair(kv, {
      tokens: [
        { token: READER, namespaces: ["tenant-a"], access: "read" },
        { token: WRITER, namespaces: [""], access: "write" },
        { token: WIDE, namespaces: ["*"], access: "admin" },
      ],
    });
    const cases: [string, Headers][] = [
      ["/api/keys/users/1", {}],
      ["/api/keys/users/1", { authorization: `Bearer ${READER}` }],
      ["/api/keys/users/1", { authorization: `bearer  ${WRITER}` }],
      ["/api/keys/users/1", { authorization: "Bearer not-a-token-at-all" }],
      ["/api/keys/users/1", { authorization: "Basic abc" }],
      ["/api/keys/users/1", { authorization: `Bearer ${READER}`, "x-cellar-namespace": "other" }],
      ["/api/keys/users/1", { authorization: `Bearer ${WIDE}`, "x-cellar-namespace": "tenant-a" }],
      ["/api/keys/users/1", { authorization: `Bearer ${WIDE}`, "x-cellar-namespace": "x y" }],
      [`/api/keys/users/1?token=${READER}`, {}],
      [`/api/keys/users/1?metadata=1&token=${WRITER}`, {}],
      [`/api/keys/users/1?token=${READER}&metadata=bad`, {}],
      ["/api/keys/users/1?token=", {}],
      [`/api/keys/users/~x:zz?token=${WIDE}`, {}],
      ["/api/keys/users/1", { authorization: [`Bearer ${WIDE}`, `Bearer ${READER}`] }],
    ];
    try {
      for (const [target, headers] of cases) {
        const [fast, plain] = await servers.both(target, headers);
        expect(fast, `${target} ${JSON.stringify(headers)}`).toEqual(plain);
      }
      // All but the repeated Authorization header, which Hono joins into one invalid value.
      expect(servers.taken()).toBe(cases.length - 1);
    } finally {
      servers.close();
    }
  });

  it("answers as Hono does when the Host header names the namespace", async () => {
    const servers = await pair(kv, { namespaceFrom: "host" });
    try {
      for (const host of ["tenant-a", "tenant-a.example.com:8080", "TENANT-A", "-bad-", "a b"]) {
        const [fast, plain] = await servers.both("/api/keys/users/1", { host });
        expect(fast, host).toEqual(plain);
      }
      // Host names node's adapter keeps as they are; "TENANT-A" and "a b" go to Hono.
      expect(servers.taken()).toBe(3);
      const twice = ["Host", "tenant-a", "Host", "tenant-a.example.com"];
      const [fast, plain] = await servers.both("/api/keys/users/1", twice);
      expect(fast).toEqual(plain);
    } finally {
      servers.close();
    }
  });

  it("leaves other methods and routes to Hono", async () => {
    const servers = await pair(kv, {});
    try {
      for (const target of ["/api/history/users/1", "/api/list?prefix=users", "/healthz"]) {
        const [fast, plain] = await servers.both(target);
        expect(fast.status, target).toBe(plain.status);
      }
      for (const method of ["PUT", "DELETE", "HEAD", "PATCH"]) {
        const [fast, plain] = await servers.both("/api/keys/users/1", {}, method);
        expect(fast.status, method).toBe(plain.status);
      }
      expect(servers.taken()).toBe(0);
    } finally {
      servers.close();
    }
  });
});
