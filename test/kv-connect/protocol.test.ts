/**
 * The KV Connect protocol at the wire: metadata exchange, data-path checks and errors,
 * versionstamped keys under concurrency, watch keep-alives, HTTP/2 cleartext beside HTTP/1.1 on
 * one port, and graceful shutdown with HTTP/2 sessions open.
 */
import { writeFileSync } from "node:fs";
import { type ClientHttp2Session, connect } from "node:http2";
import { join } from "node:path";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeKey, encodeKey } from "../../src/codec/key.js";
import { databaseIdOf } from "../../src/kv-connect/namespace.js";
import {
  AtomicWriteOutputSchema,
  AtomicWriteSchema,
  AtomicWriteStatus,
  MutationType,
  SnapshotReadOutputSchema,
  SnapshotReadSchema,
  ValueEncoding,
  WatchSchema,
} from "../../src/kv-connect/proto/datapath_pb.js";
import { type RunningServer, startServer } from "../../src/server/index.js";
import { denoSandbox } from "./helpers.js";

const V3 = (namespace = "") => ({
  "x-denokv-version": "3",
  "x-denokv-database-id": databaseIdOf(namespace),
  authorization: "Bearer t",
});

async function post<Desc extends DescMessage>(
  url: string,
  schema: Desc,
  message: MessageInitShape<Desc>,
  headers: Record<string, string>,
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf", ...headers },
    body: toBinary(schema, create(schema, message)),
  });
}

function metadata(url: string, body: unknown, token = "t"): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

describe("KV Connect protocol", () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer({ db: ":memory:", port: 0, pingInterval: 50 });
  });

  afterAll(() => server?.close());

  it("answers the metadata exchange with exactly the fields of the response schema", async () => {
    const res = await metadata(`${server.url}/kv`, { supportedVersions: [1, 2, 3] });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = await res.json();
    expect(Object.keys(body).sort()).toEqual([
      "databaseId",
      "endpoints",
      "expiresAt",
      "token",
      "version",
    ]);
    expect(body).toMatchObject({
      version: 3,
      databaseId: databaseIdOf(""),
      endpoints: [{ url: "/kv/data", consistency: "strong" }],
      token: "t",
    });
    expect(body.databaseId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());
  });

  it("negotiates the highest common version; version 1 gets an absolute endpoint URL", async () => {
    expect(
      (await (await metadata(`${server.url}/kv`, { supportedVersions: [1, 2] })).json()).version,
    ).toBe(2);
    const v1 = await (await metadata(`${server.url}/kv/tenant-a`, undefined)).json();
    expect(v1).toMatchObject({
      version: 1,
      databaseId: databaseIdOf("tenant-a"),
      endpoints: [{ url: `${server.url}/kv/data/tenant-a` }],
    });
    const none = await metadata(`${server.url}/kv`, { supportedVersions: [4] });
    expect(none.status).toBe(400);
    expect(none.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await none.text()).toMatch(/no common protocol version/);
    expect((await metadata(`${server.url}/kv`, { supportedVersions: "3" })).status).toBe(400);
    expect(
      (
        await metadata(`${server.url}/kv/${encodeURIComponent("$reserved")}`, {
          supportedVersions: [3],
        })
      ).status,
    ).toBe(400);
  });

  it("reads with the database id of either header and refuses a wrong one", async () => {
    const key = encodeKey(["p"]);
    await server.kv.set(["p"], "v");
    const read = { ranges: [{ start: key, end: Buffer.concat([key, Buffer.of(0)]), limit: 1 }] };
    const v1 = await post(`${server.url}/kv/data/snapshot_read`, SnapshotReadSchema, read, {
      "x-transaction-domain-id": databaseIdOf(""),
      authorization: "Bearer t",
    });
    expect(v1.headers.get("content-type")).toBe("application/x-protobuf");
    const out = fromBinary(SnapshotReadOutputSchema, new Uint8Array(await v1.arrayBuffer()));
    expect(out.readIsStronglyConsistent).toBe(true);
    expect(decodeKey(out.ranges[0]!.values[0]!.key)).toEqual(["p"]);
    const wrongId = await post(
      `${server.url}/kv/data/snapshot_read`,
      SnapshotReadSchema,
      read,
      V3("tenant-a"),
    );
    expect([wrongId.status, await wrongId.text()]).toEqual([
      400,
      expect.stringMatching(/serves database/),
    ]);
    const wrongVersion = await post(
      `${server.url}/kv/data/snapshot_read`,
      SnapshotReadSchema,
      read,
      { ...V3(), "x-denokv-version": "9" },
    );
    expect(wrongVersion.status).toBe(400);
    const badLimit = await post(
      `${server.url}/kv/data/snapshot_read`,
      SnapshotReadSchema,
      { ranges: [{ ...read.ranges[0], limit: 0 }] },
      V3(),
    );
    expect(badLimit.status).toBe(400);
    const garbage = await fetch(`${server.url}/kv/data/snapshot_read`, {
      method: "POST",
      headers: V3(),
      body: new Uint8Array([0xff, 0xff, 0xff]),
    });
    expect([garbage.status, await garbage.text()]).toEqual([
      400,
      expect.stringMatching(/not a com\.deno\.kv\.datapath\.SnapshotRead/),
    ]);
  });

  it("never reads outside the namespace, whatever the range", async () => {
    await server.kv.namespace("secret").set(["s"], "hidden");
    const res = await post(
      `${server.url}/kv/data/snapshot_read`,
      SnapshotReadSchema,
      {
        ranges: [
          { start: new Uint8Array(0), end: new Uint8Array([0xff, 0xff, 0xff]), limit: 1000 },
        ],
      },
      V3(),
    );
    const out = fromBinary(SnapshotReadOutputSchema, new Uint8Array(await res.arrayBuffer()));
    const keys = out.ranges[0]!.values.map((v) => decodeKey(v.key));
    expect(keys).not.toContainEqual(["s"]);
    expect(keys).toContainEqual(["p"]);
  });

  it("refuses bounded V8 sums and unknown encodings with a 400", async () => {
    const url = `${server.url}/kv/data/atomic_write`;
    const sum = await post(
      url,
      AtomicWriteSchema,
      {
        mutations: [
          {
            key: encodeKey(["n"]),
            mutationType: MutationType.M_SUM,
            value: {
              data: new Uint8Array([0xff, 0x0f, 0x49, 0x02]),
              encoding: ValueEncoding.VE_V8,
            },
            sumMin: new Uint8Array([1]),
          },
        ],
      },
      V3(),
    );
    expect([sum.status, await sum.text()]).toEqual([400, expect.stringMatching(/sum/)]);
    const unknown = await post(
      url,
      AtomicWriteSchema,
      {
        mutations: [
          {
            key: encodeKey(["n"]),
            mutationType: MutationType.M_SET,
            value: { data: new Uint8Array([1]), encoding: 7 as ValueEncoding },
          },
        ],
      },
      V3(),
    );
    expect(unknown.status).toBe(400);
    const emptyKey = await post(
      url,
      AtomicWriteSchema,
      { mutations: [{ key: new Uint8Array(0), mutationType: MutationType.M_DELETE }] },
      V3(),
    );
    expect(emptyKey.status).toBe(400);
  });

  it("gives each concurrent versionstamped write its own commit's versionstamp", async () => {
    const writes = Array.from({ length: 20 }, (_, i) =>
      post(
        `${server.url}/kv/data/atomic_write`,
        AtomicWriteSchema,
        {
          mutations: [
            {
              key: encodeKey(["stamped"]),
              mutationType: MutationType.M_SET_SUFFIX_VERSIONSTAMPED_KEY,
              value: { data: new Uint8Array([i]), encoding: ValueEncoding.VE_BYTES },
            },
          ],
        },
        V3(),
      ).then(async (res) =>
        fromBinary(AtomicWriteOutputSchema, new Uint8Array(await res.arrayBuffer())),
      ),
    );
    const results = await Promise.all(writes);
    expect(results.every((r) => r.status === AtomicWriteStatus.AW_SUCCESS)).toBe(true);
    const stamps = results.map((r) => Buffer.from(r.versionstamp).toString("hex"));
    const stored = [];
    for await (const e of server.kv.list<Uint8Array>({ prefix: ["stamped"] }))
      stored.push([e.key[1], e.versionstamp]);
    expect(stored).toHaveLength(20);
    expect(stored.every(([suffix, versionstamp]) => suffix === versionstamp)).toBe(true);
    expect(new Set(stored.map(([suffix]) => suffix))).toEqual(new Set(stamps));
  });

  it("sends a watch as length-prefixed frames with keep-alives", async () => {
    const res = await post(
      `${server.url}/kv/data/watch`,
      WatchSchema,
      { keys: [{ key: encodeKey(["p"]) }] },
      V3(),
    );
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const reader = res.body!.getReader();
    let bytes = Buffer.alloc(0);
    const frameEnd = () =>
      bytes.length < 4 ? Number.POSITIVE_INFINITY : 4 + bytes.readUInt32LE(0);
    while (bytes.length < frameEnd() + 4)
      bytes = Buffer.concat([bytes, (await reader.read()).value!]);
    const first = bytes.readUInt32LE(0);
    expect(first).toBeGreaterThan(0);
    expect(bytes.readUInt32LE(4 + first)).toBe(0);
    await reader.cancel();
  });
});

describe("KV Connect with a tokens file", () => {
  const sandbox = denoSandbox();
  let server: RunningServer;

  beforeAll(async () => {
    const file = join(sandbox.dir, "tokens.json");
    writeFileSync(
      file,
      JSON.stringify({
        tokens: [{ token: "multi-namespace-token", namespaces: ["a", "b"], access: "write" }],
      }),
    );
    server = await startServer({ db: ":memory:", port: 0, tokensFile: file });
  });

  afterAll(async () => {
    await server?.close();
    sandbox.dispose();
  });

  it("answers 401 in plain text for a missing or wrong token", async () => {
    const wrong = await metadata(`${server.url}/kv/a`, { supportedVersions: [3] }, "not-the-token");
    expect([wrong.status, await wrong.text()]).toEqual([401, "the bearer token is not valid"]);
    const missing = await fetch(`${server.url}/kv/data/a/snapshot_read`, {
      method: "POST",
      headers: { "x-denokv-version": "3" },
    });
    expect(missing.status).toBe(401);
  });

  it("opens each namespace of a multi-namespace token by name, and no other", async () => {
    expect(
      (await metadata(`${server.url}/kv/b`, { supportedVersions: [3] }, "multi-namespace-token"))
        .status,
    ).toBe(200);
    expect(
      (await metadata(`${server.url}/kv/c`, { supportedVersions: [3] }, "multi-namespace-token"))
        .status,
    ).toBe(403);
    expect(
      (await metadata(`${server.url}/kv`, { supportedVersions: [3] }, "multi-namespace-token"))
        .status,
    ).toBe(403);
  });
});

describe("HTTP/2 cleartext and HTTP/1.1 on one port", () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer({ db: ":memory:", port: 0 });
  });

  afterAll(() => server?.close());

  const h2 = (
    session: ClientHttp2Session,
    path: string,
    method = "GET",
    body?: Uint8Array,
    headers: Record<string, string> = {},
  ) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = session.request({ ":method": method, ":path": path, ...headers });
      const chunks: Buffer[] = [];
      let status = 0;
      req.on("response", (h) => {
        status = Number(h[":status"]);
      });
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
      req.on("error", reject);
      req.end(body);
    });

  it("serves the same application to both protocols", async () => {
    await server.kv.set(["both"], "yes");
    const session = connect(server.url);
    try {
      const health = await h2(session, "/healthz");
      expect(health.status).toBe(200);
      const key = await h2(session, "/api/keys/both");
      expect(JSON.parse(key.body.toString()).value).toBe("yes");
      const meta = await h2(
        session,
        "/kv",
        "POST",
        Buffer.from(JSON.stringify({ supportedVersions: [3] })),
        { authorization: "Bearer t" },
      );
      expect(JSON.parse(meta.body.toString()).version).toBe(3);
    } finally {
      session.close();
    }
    const http1 = await fetch(`${server.url}/api/keys/both`);
    expect((await http1.json()).value).toBe("yes");
  });

  it("stops gracefully with HTTP/2 sessions open, one of them watching", async () => {
    const other = await startServer({ db: ":memory:", port: 0 });
    const idle = connect(other.url);
    const watching = connect(other.url);
    await h2(idle, "/healthz");
    const stream = watching.request({ ":method": "POST", ":path": "/kv/data/watch", ...V3() });
    stream.end(toBinary(WatchSchema, create(WatchSchema, { keys: [{ key: encodeKey(["w"]) }] })));
    await new Promise((resolve) => stream.once("data", resolve));
    const ended = new Promise((resolve) => stream.on("close", resolve));
    const started = Date.now();
    await other.close();
    await ended;
    expect(Date.now() - started).toBeLessThan(2000);
    idle.destroy();
    watching.destroy();
  });
});
