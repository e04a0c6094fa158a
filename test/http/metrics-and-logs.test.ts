/**
 * Metrics and logs of a real server over a real port: `GET /metrics` and `GET /api/metrics`,
 * their tokens, the HTTP request metrics of Hono's routes and of the fast path, one JSON line
 * per request with its id, operation lines that carry it, and the operation seam seeing what
 * the remote client and the HTTP routes do.
 */
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { type KvOperation, openKv } from "../../src/index.js";
import { metricsRegistry } from "../../src/observe/index.js";
import { cellarServe } from "../cli/serve.js";
import { send, serve, serverFor, tempDir } from "./helpers.js";

const ALL_READ = "all-namespaces-reader-0123";
const TENANT = "tenant-only-token-0123456";
const WRITER = "all-namespaces-writer-0123";

describe("GET /metrics and GET /api/metrics", () => {
  const server = serverFor({
    tokens: [
      { token: ALL_READ, namespaces: ["*"], access: "read", name: "scraper" },
      { token: TENANT, namespaces: ["tenant-a"], access: "admin" },
      { token: WRITER, namespaces: ["*"], access: "write" },
    ],
  });

  it("answers Prometheus text to a token of every namespace", async () => {
    await send(server().url, "/api/keys/a", { method: "PUT", body: { value: 1 }, token: WRITER });
    const reply = await send(server().url, "/metrics", { token: ALL_READ });
    expect(reply.status).toBe(200);
    expect(reply.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(reply.text).toMatch(/# TYPE cellar_operations_total counter/);
    expect(reply.text).toMatch(/cellar_operations_total\{op="set",outcome="ok"\} [1-9]/);
    expect(reply.text).toContain("process_cpu_user_seconds_total");
  });

  it("refuses a request without a token, and a token of some namespaces only", async () => {
    const none = await send(server().url, "/metrics");
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe("UNAUTHORIZED");
    expect(none.headers["www-authenticate"]).toMatch(/^Bearer/);
    const narrow = await send(server().url, "/metrics", { token: TENANT });
    expect(narrow.status).toBe(403);
    expect((await send(server().url, "/api/metrics")).status).toBe(401);
    expect((await send(server().url, "/api/metrics", { token: TENANT })).status).toBe(403);
  });

  it("answers the same metrics as JSON", async () => {
    const reply = await send(server().url, "/api/metrics", { token: ALL_READ });
    expect(reply.status).toBe(200);
    const names = (reply.json as { name: string }[]).map((metric) => metric.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "cellar_operations_total",
        "cellar_errors_total",
        "cellar_operation_duration_seconds",
        "cellar_commit_batch_size",
        "cellar_http_requests_total",
        "cellar_watchers",
        "cellar_entries",
      ]),
    );
  });

  it("counts requests by route and status, those of the fast path too", async () => {
    const url = server().url;
    await send(url, "/api/keys/users/ada", { token: ALL_READ });
    await send(url, "/api/keys/users/ada", {
      token: ALL_READ,
      headers: { "x-cellar-namespace": "" },
    });
    await send(url, "/api/keys/users/ada?metadata=maybe", { token: ALL_READ });
    await send(url, "/api/keys/users/ada", { method: "PUT", body: { value: 1 } });
    await send(url, "/no/such/route", { token: ALL_READ });
    const text = (await send(url, "/metrics", { token: ALL_READ })).text;
    const count = (labels: string) =>
      Number(new RegExp(`cellar_http_requests_total\\{${labels}\\} (\\d+)`).exec(text)?.[1] ?? 0);
    expect(count('method="GET",route="/api/keys/{key}",status="200"')).toBeGreaterThanOrEqual(2);
    expect(count('method="GET",route="/api/keys/{key}",status="400"')).toBe(1);
    expect(count('method="PUT",route="/api/keys/{key}",status="401"')).toBe(1);
    expect(count('method="GET",route="unmatched",status="404"')).toBe(1);
    expect(text).toMatch(
      /cellar_http_request_duration_seconds_count\{method="GET",route="\/api\/keys\/\{key\}"\} \d+/,
    );
  });

  it("is listed in the OpenAPI document", async () => {
    const doc = (await send(server().url, "/api/openapi.json")).json;
    expect(doc.paths["/metrics"].get.operationId).toBe("getMetricsText");
    expect(doc.paths["/api/metrics"].get.operationId).toBe("getMetrics");
  });
});

describe("request and operation lines", () => {
  const raw: string[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void raw.push(line) });
  const server = serverFor({
    logger,
    tokens: [{ token: WRITER, namespaces: ["*"], access: "write", name: "app" }],
  });
  const parsed = () => raw.map((line) => JSON.parse(line) as Record<string, unknown>);

  it("writes a line per request with its id, the token's name and no key or token", async () => {
    raw.length = 0;
    const put = await send(server().url, "/api/keys/users/ada-secret", {
      method: "PUT",
      body: { value: "value-secret" },
      token: WRITER,
      headers: { "x-request-id": "client-chosen-1" },
    });
    expect(put.headers["x-request-id"]).toBe("client-chosen-1");
    const get = await send(server().url, "/api/keys/users/ada-secret", { token: WRITER });
    expect(get.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    const requests = parsed().filter((line) => line.msg === "request");
    expect(requests).toMatchObject([
      { level: 30, method: "PUT", route: "/api/keys/{key}", status: 200, token: "app" },
      { level: 30, method: "GET", route: "/api/keys/{key}", status: 200, token: "app" },
    ]);
    expect(requests[0]!.requestId).toBe("client-chosen-1");
    expect(requests[1]!.requestId).toBe(get.headers["x-request-id"]);
    expect(raw.join("")).not.toMatch(/secret|all-namespaces/);
  });

  it("carries the request id into the operations it caused, on both paths", async () => {
    raw.length = 0;
    await send(server().url, "/api/keys/k", {
      method: "PUT",
      body: { value: 1 },
      token: WRITER,
      headers: { "x-request-id": "hono-path" },
    });
    await send(server().url, "/api/keys/k", {
      token: WRITER,
      headers: { "x-request-id": "fast-path" },
    });
    const operations = parsed().filter((line) => line.msg === "operation");
    expect(operations).toContainEqual(
      expect.objectContaining({ op: "set", requestId: "hono-path" }),
    );
    expect(operations).toContainEqual(
      expect.objectContaining({ op: "get", requestId: "fast-path" }),
    );
  });
});

describe("the operation seam behind a server", () => {
  const seen: string[] = [];
  let running: Awaited<ReturnType<typeof serve>>;
  afterAll(() => running?.close());

  it("sees the remote client's and the HTTP routes' operations by name", async () => {
    running = await serve();
    running.kv.observe((operation: KvOperation) => (outcome) => {
      seen.push(`${operation.op}:${operation.namespace}:${outcome.ok ? "ok" : outcome.code}`);
    });
    const remote = await openKv(running.url);
    await remote.set(["a"], 1);
    await remote.get(["a"]);
    await remote
      .atomic()
      .check({ key: ["a"], versionstamp: null })
      .set(["a"], 2)
      .commit();
    await remote.close();
    await send(running.url, "/api/keys/b", { method: "PUT", body: { value: 1 } });
    await send(running.url, "/api/delete", { body: { keys: [["a"], ["b"]] } });
    expect(seen).toEqual(["set::ok", "get::ok", "atomic::CHECK_FAILED", "set::ok", "atomic::ok"]);
    expect(metricsRegistry(running.kv)).toBeDefined();
  });
});

describe("cellar serve's logs", () => {
  const dir = tempDir("cellar-logs-");
  afterAll(() => dir.cleanup());

  it("prints a JSON line per request at info, and operations at debug from CELLAR_LOG_LEVEL", async () => {
    for (const [args, env, operations] of [
      [[], {}, false],
      [[], { CELLAR_LOG_LEVEL: "debug" }, true],
      [["--log-level", "debug"], { CELLAR_LOG_LEVEL: "error" }, true],
    ] as const) {
      const served = cellarServe(["--db", join(dir.path, "logs.db"), "--port", "0", ...args], env);
      try {
        const url = await served.listening();
        await send(url, "/api/keys/x", { method: "PUT", body: { value: 1 } });
        await served.stop();
        const json = served
          .output()
          .stdout.split("\n")
          .filter((line) => line.startsWith("{"))
          .map((line) => JSON.parse(line) as Record<string, unknown>);
        expect(json).toContainEqual(
          expect.objectContaining({ msg: "request", method: "PUT", status: 200 }),
        );
        expect(json.some((line) => line.msg === "operation")).toBe(operations);
      } finally {
        await served.stop();
      }
    }
  });

  it("refuses a log level that is none", async () => {
    const served = cellarServe(["--db", ":memory:", "--port", "0", "--log-level", "loud"]);
    expect(await served.exited).toBe(2);
    expect(served.output().stderr).toMatch(/log-level/);
  });
});
