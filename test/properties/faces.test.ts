/**
 * One commit pipeline: the same random atomic writes sent through the embedded API, the JSON
 * driver protocol (`POST /api/driver/write`, as any HTTP client may send it) and KV Connect
 * (`POST /kv/data/{ns}/atomic_write`, protobuf) are accepted or refused alike, and leave the
 * same entries and queue messages. Each face writes to its own namespace of one server's
 * database, configured with small limits so that random writes cross every one of them.
 *
 * Values are byte arrays, stored as bytes by every face, so a value's size is the same whatever
 * carried it.
 */
import { serialize } from "node:v8";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeKey } from "../../src/codec/key.js";
import { statusOf } from "../../src/http/errors.js";
import type { Kv } from "../../src/index.js";
import { KvError, KvU64 } from "../../src/index.js";
import { databaseIdOf } from "../../src/kv-connect/namespace.js";
import {
  AtomicWriteOutputSchema,
  AtomicWriteSchema,
  AtomicWriteStatus,
  MutationType,
  ValueEncoding,
} from "../../src/kv-connect/proto/datapath_pb.js";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { b64 } from "../../src/wire/protocol.js";

const LIMITS = { maxKeySize: 24, maxValueSize: 40, maxChecks: 2, maxMutations: 3 };
const HOUR = 3_600_000;

type Op =
  | { type: "set"; key: string[]; value: Uint8Array; expire: boolean }
  | { type: "delete"; key: string[] }
  | { type: "sum"; key: string[]; n: bigint };
interface Write {
  checks: { key: string[]; absent: boolean }[];
  ops: Op[];
  enqueues: Uint8Array[];
}
/** What became of a write: committed, refused by a check, or refused with an error's status. */
type Outcome = "ok" | "check failed" | { status: number };

const keyArb = fc.array(fc.string({ minLength: 1, maxLength: 14, unit: "grapheme-ascii" }), {
  minLength: 1,
  maxLength: 2,
});
const bytesArb = fc.uint8Array({ maxLength: 48 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    type: fc.constant("set" as const),
    key: keyArb,
    value: bytesArb,
    expire: fc.boolean(),
  }),
  fc.record({ type: fc.constant("delete" as const), key: keyArb }),
  fc.record({ type: fc.constant("sum" as const), key: keyArb, n: fc.bigInt(0n, 2n ** 64n - 1n) }),
);
const writeArb: fc.Arbitrary<Write> = fc.record({
  checks: fc.array(fc.record({ key: keyArb, absent: fc.boolean() }), { maxLength: 3 }),
  ops: fc.array(opArb, { maxLength: 4 }),
  enqueues: fc.array(bytesArb, { maxLength: 2 }),
});

/** A versionstamp no commit has, so its check fails whether or not the key exists. */
const NEVER = "ffffffffffffffff0000";

let server: RunningServer;
let root: Kv;
beforeAll(async () => {
  server = await startServer({ db: ":memory:", port: 0, openOptions: { limits: LIMITS } });
  root = server.kv;
});
afterAll(() => server.close());

async function embedded(kv: Kv, write: Write): Promise<Outcome> {
  try {
    const op = kv.atomic();
    for (const c of write.checks) op.check({ key: c.key, versionstamp: c.absent ? null : NEVER });
    for (const m of write.ops) {
      if (m.type === "set") op.set(m.key, m.value, m.expire ? { expireIn: HOUR } : {});
      else if (m.type === "delete") op.delete(m.key);
      else op.sum(m.key, new KvU64(m.n));
    }
    for (const value of write.enqueues) op.enqueue(value);
    return (await op.commit()).ok ? "ok" : "check failed";
  } catch (error) {
    if (!(error instanceof KvError)) throw error;
    return { status: statusOf(error.code) };
  }
}

async function driverProtocol(namespace: string, write: Write): Promise<Outcome> {
  const stored = (key: string[]) => b64(encodeKey([namespace, ...key]));
  const now = Date.now();
  const body = {
    writes: [
      {
        checks: write.checks.map((c) => ({ k: stored(c.key), vs: c.absent ? null : NEVER })),
        mutations: write.ops.map((m) =>
          m.type === "set"
            ? {
                t: "set",
                k: stored(m.key),
                v: { e: "bytes", d: b64(m.value) },
                x: m.expire ? now + HOUR : null,
              }
            : m.type === "delete"
              ? { t: "delete", k: stored(m.key) }
              : { t: "sum", k: stored(m.key), o: m.n.toString(), x: null },
        ),
        enqueues: write.enqueues.map((value) => ({
          q: b64(encodeKey([namespace, "default"])),
          id: crypto.randomUUID(),
          v: { e: "bytes", d: b64(value) },
          at: now,
          p: 0,
          b: [100, 1000, 5000, 30_000, 60_000],
          u: [],
        })),
        now,
      },
    ],
  };
  const res = await fetch(`${server.url}/api/driver/write`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) return { status: res.status };
  const [result] = ((await res.json()) as { results: Record<string, unknown>[] }).results;
  if (result?.vs) return "ok";
  if (result?.failed) return "check failed";
  const { code } = (result as { error: { code: KvError["code"] } }).error;
  return { status: statusOf(code) };
}

async function kvConnect(namespace: string, write: Write): Promise<Outcome> {
  const key = (parts: string[]) => encodeKey(parts);
  const message = create(AtomicWriteSchema, {
    checks: write.checks.map((c) => ({
      key: key(c.key),
      versionstamp: c.absent ? new Uint8Array() : Buffer.from(NEVER, "hex"),
    })),
    mutations: write.ops.map((m) =>
      m.type === "set"
        ? {
            key: key(m.key),
            mutationType: MutationType.M_SET,
            value: { data: m.value, encoding: ValueEncoding.VE_BYTES },
            expireAtMs: m.expire ? BigInt(Date.now() + HOUR) : 0n,
          }
        : m.type === "delete"
          ? { key: key(m.key), mutationType: MutationType.M_DELETE }
          : {
              key: key(m.key),
              mutationType: MutationType.M_SUM,
              value: { data: KvU64.toBytes(new KvU64(m.n)), encoding: ValueEncoding.VE_LE64 },
            },
    ),
    enqueues: write.enqueues.map((value) => ({
      payload: v8Bytes(value),
      deadlineMs: BigInt(Date.now()),
    })),
  });
  const res = await fetch(`${server.url}/kv/data/${namespace}/atomic_write`, {
    method: "POST",
    headers: {
      "x-denokv-version": "3",
      "x-denokv-database-id": databaseIdOf(namespace),
      authorization: "Bearer any-token-works-on-loopback",
    },
    body: toBinary(AtomicWriteSchema, message),
  });
  if (res.status !== 200) return { status: res.status };
  const output = fromBinary(AtomicWriteOutputSchema, new Uint8Array(await res.arrayBuffer()));
  return output.status === AtomicWriteStatus.AW_SUCCESS ? "ok" : "check failed";
}

/** A message payload as Deno sends it: V8's serialization of a Uint8Array of `value`'s size. */
function v8Bytes(value: Uint8Array): Uint8Array {
  return serialize(value);
}

/** What a namespace holds: entries (key, value bytes, whether they expire) and queued messages. */
async function holdings(kv: Kv) {
  const entries = [];
  for await (const e of kv.list({ prefix: [] }, { metadata: true })) {
    entries.push({ key: e.key, value: e.value, expires: e.metadata?.expiresAt != null });
  }
  return { entries, queued: (await kv.queue("default").stats()).pending };
}

describe("the commit pipeline, through every face", () => {
  it("accepts and refuses the same writes, and stores the same results", async () => {
    let round = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(writeArb, { minLength: 1, maxLength: 6 }), async (writes) => {
        const names = ["a", "b", "c"].map((face) => `${face}${round}`);
        round++;
        const views = names.map((name) => root.namespace(name));
        for (const write of writes) {
          const outcomes = [
            await embedded(views[0]!, write),
            await driverProtocol(names[1]!, write),
            await kvConnect(names[2]!, write),
          ];
          const what = JSON.stringify(write, replacer);
          // The embedded builder throws at the first bad call, in call order; the protocols
          // send the whole write at once, and the pipeline counts before it looks at keys.
          expect(outcomes.map(acceptance), what).toEqual(Array(3).fill(acceptance(outcomes[0]!)));
          expect(outcomes[2], what).toEqual(outcomes[1]);
        }
        const [a, b, c] = await Promise.all(views.map(holdings));
        expect(b).toEqual(a);
        expect(c).toEqual(a);
      }),
      { numRuns: 100 },
    );
  });

  it("refuses, through the driver protocol, a write whose enqueues pass maxMutations", async () => {
    const write: Write = {
      checks: [],
      ops: [
        { type: "set", key: ["x"], value: Uint8Array.of(1), expire: false },
        { type: "set", key: ["y"], value: Uint8Array.of(2), expire: false },
      ],
      enqueues: [Uint8Array.of(3), Uint8Array.of(4)],
    };
    expect(await driverProtocol("limits", write)).toEqual({ status: 400 });
    expect(await holdings(root.namespace("limits"))).toEqual({ entries: [], queued: 0 });
  });
});

const acceptance = (outcome: Outcome) => (typeof outcome === "string" ? outcome : "refused");

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return `bytes(${value.length})`;
  if (typeof value === "bigint") return `${value}n`;
  return value;
}
