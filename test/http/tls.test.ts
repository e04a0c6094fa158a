/**
 * HTTPS over a real loopback port with a self-signed certificate made by openssl: HTTP/1.1 and
 * HTTP/2 (ALPN) on one port, KV Connect included, from startServer and from cellar serve.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:http2";
import { request } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/index.js";
import { cellarServe } from "../cli/serve.js";
import { type Reply, serve, tempDir } from "./helpers.js";

const dir = tempDir("cellar-tls-");
const CERT = join(dir.path, "cert.pem");
const KEY = join(dir.path, "key.pem");
const TOKEN = "tls-admin-token-00000";

beforeAll(() => {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-keyout",
      KEY,
      "-out",
      CERT,
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdio: "ignore" },
  );
});
afterAll(() => dir.cleanup());

/** One HTTP/1.1 request over TLS, trusting only the test's certificate. */
function https1(
  url: string,
  path: string,
  options: { method?: string; body?: unknown } = {},
): Promise<{ status: number; json: Reply["json"]; version: string }> {
  const { hostname, port } = new URL(url);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        path,
        method: options.method ?? "GET",
        ca: readFileSync(CERT),
        agent: false,
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(payload !== undefined && { "content-type": "application/json" }),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(text),
            version: res.httpVersion,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** One HTTP/2 request over TLS (ALPN h2). */
async function https2(
  url: string,
  path: string,
  options: { method?: string; body?: unknown } = {},
): Promise<{ status: number; json: Reply["json"] }> {
  const session = connect(url, { ca: readFileSync(CERT) });
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": options.method ?? "GET",
        ":path": path,
        authorization: `Bearer ${TOKEN}`,
        ...(options.body !== undefined && { "content-type": "application/json" }),
      });
      let status = 0;
      let text = "";
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
      });
      stream.on("data", (chunk) => {
        text += chunk;
      });
      stream.on("end", () => resolve({ status, json: JSON.parse(text) }));
      stream.on("error", reject);
      stream.end(options.body === undefined ? undefined : JSON.stringify(options.body));
    });
  } finally {
    session.close();
  }
}

describe("startServer with tls", () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await serve({
      tls: { cert: readFileSync(CERT), key: readFileSync(KEY) },
      tokens: [{ token: TOKEN, namespaces: ["*"], access: "admin" }],
    });
  });
  afterAll(() => server.close());

  it("listens on an https URL and answers HTTP/1.1 (fast path included)", async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const put = await https1(server.url, "/api/keys/greeting", {
      method: "PUT",
      body: { value: "over tls" },
    });
    expect(put.status).toBe(200);
    const get = await https1(server.url, "/api/keys/greeting");
    expect(get).toMatchObject({ status: 200, version: "1.1" });
    expect(get.json.value).toBe("over tls");
  });

  it("answers HTTP/2 negotiated by ALPN on the same port", async () => {
    const reply = await https2(server.url, "/api/keys/greeting");
    expect(reply).toMatchObject({ status: 200, json: { value: "over tls" } });
    const list = await https2(server.url, "/api/list", { method: "POST", body: {} });
    expect(list.json.entries).toHaveLength(1);
  });

  it("serves KV Connect's metadata exchange over HTTP/2 and HTTPS", async () => {
    const body = { supportedVersions: [1, 2, 3] };
    const h2 = await https2(server.url, "/kv", { method: "POST", body });
    expect(h2.status).toBe(200);
    expect(h2.json).toMatchObject({ version: 3, token: TOKEN });
    expect(h2.json.endpoints[0].url).toBe("/kv/data");
    const h1 = await https1(server.url, "/kv", { method: "POST", body });
    expect(h1.json).toMatchObject({ version: 3 });
  });

  it("closes gracefully with HTTP/1.1 keep-alive and HTTP/2 sessions open", async () => {
    const other = await serve({ tls: { cert: readFileSync(CERT), key: readFileSync(KEY) } });
    const session = connect(other.url, { ca: readFileSync(CERT) });
    await new Promise((resolve) => session.once("connect", resolve));
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(2000);
    session.destroy();
  });
});

describe("cellar serve --tls-cert --tls-key", () => {
  it("serves HTTPS and prints an https URL; a certificate without its key is refused", async () => {
    const served = cellarServe(["--db", ":memory:", "--port", "0", "--tls-cert", CERT], {
      CELLAR_TLS_KEY: KEY,
    });
    try {
      const url = await served.listening();
      expect(url).toMatch(/^https:\/\//);
      expect((await https2(url, "/api/keys/a")).status).toBe(200);
    } finally {
      await served.stop();
    }
    const half = cellarServe(["--db", ":memory:", "--port", "0", "--tls-cert", CERT]);
    expect(await half.exited).toBe(2);
    expect(half.output().stderr).toMatch(/TLS needs both a certificate \(tlsCert\) and its key/);
  });
});
