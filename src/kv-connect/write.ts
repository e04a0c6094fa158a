/**
 * KV Connect's `atomic_write`: checks, mutations and enqueues of one request become one atomic
 * write of the Cellar driver, with every key moved inside the request's namespace.
 *
 * - `set`/`delete`/`sum`/`min`/`max` map one to one; `sum`/`min`/`max` take KvU64 operands only
 *   (the V8-number `sum` with `sum_min`/`sum_max` is refused with `INVALID_MUTATION`).
 * - `expire_at_ms` > 0 is the entry's expiry instant; 0 (or -1) means never.
 * - Enqueues go to the namespace's default queue (`kv.queue("default")`, what `kv.listenQueue`
 *   consumes), with Deno KV's default backoff schedule when the request gives none.
 * - `set` with a versionstamped key (`kv.commitVersionstamp()` as the last key part) appends the
 *   commit's versionstamp as a string part of 20 hex characters, as Deno KV does.
 */
import { create } from "@bufbuild/protobuf";
import { uuidv7 } from "uuidv7";
import type { Check, CommitResult, Enqueue, Mutation } from "../contract/index.js";
import { DEFAULT_QUEUE, queueId } from "../core/queue.js";
import { assertCounts, type KvCore } from "../core/surface.js";
import { KvError } from "../errors.js";
import type { ConnectSpace } from "./namespace.js";
import {
  type AtomicWrite,
  type AtomicWriteOutput,
  AtomicWriteOutputSchema,
  AtomicWriteStatus,
  type Enqueue as ConnectEnqueue,
  type Mutation as ConnectMutation,
  MutationType,
} from "./proto/datapath_pb.js";
import {
  rawFromConnect,
  u64Operand,
  v8ForNode,
  versionstampBytes,
  versionstampFromBytes,
} from "./values.js";

/** Deno KV's retry delays when an enqueue names none. */
const DENO_DEFAULT_BACKOFF = [100, 1000, 5000, 30_000, 60_000];

function expiryOf(m: ConnectMutation): number | null {
  if (m.expireAtMs === 0n || m.expireAtMs === -1n) return null;
  if (m.expireAtMs < 0n || m.expireAtMs > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `expire_at_ms must be epoch milliseconds, got ${m.expireAtMs}`,
    );
  }
  return Number(m.expireAtMs);
}

function planMutation(space: ConnectSpace, m: ConnectMutation, index: number): Mutation {
  const what = `mutation ${index}`;
  const type = m.mutationType;
  const key = space.storedKey(m.key);
  switch (type) {
    case MutationType.M_SET_SUFFIX_VERSIONSTAMPED_KEY:
      // The driver appends the commit's own versionstamp to the key.
      return {
        type: "set",
        key,
        value: rawFromConnect(m.value, what),
        expiresAt: expiryOf(m),
        versionstampSuffix: true,
      };
    case MutationType.M_SET:
      return { type: "set", key, value: rawFromConnect(m.value, what), expiresAt: expiryOf(m) };
    case MutationType.M_DELETE:
      return { type: "delete", key };
    case MutationType.M_SUM:
    case MutationType.M_MIN:
    case MutationType.M_MAX: {
      const name =
        type === MutationType.M_SUM ? "sum" : type === MutationType.M_MIN ? "min" : "max";
      if (m.sumMin.length > 0 || m.sumMax.length > 0 || m.sumClamp) {
        throw new KvError(
          "INVALID_MUTATION",
          "'sum' with bounds (sum_min, sum_max, sum_clamp) is not supported; sum a KvU64",
        );
      }
      return { type: name, key, operand: u64Operand(m.value, name), expiresAt: expiryOf(m) };
    }
    default:
      throw new KvError("INVALID_MUTATION", `${what} has unknown mutation type ${type}`);
  }
}

function planEnqueue(space: ConnectSpace, e: ConnectEnqueue, now: number): Enqueue {
  const deadline = Number(e.deadlineMs);
  if (!Number.isSafeInteger(deadline) || deadline < 0) {
    throw new KvError("INVALID_ARGUMENT", "an enqueue's deadline is epoch milliseconds");
  }
  return {
    queue: queueId(space.keyspace, DEFAULT_QUEUE),
    id: uuidv7(),
    value: { encoding: "v8", data: v8ForNode(e.payload) },
    availableAt: Math.max(deadline, now),
    priority: 0,
    backoffSchedule: e.backoffSchedule.length > 0 ? [...e.backoffSchedule] : DENO_DEFAULT_BACKOFF,
    keysIfUndelivered: e.keysIfUndelivered.map((key) => space.storedKey(key)),
  };
}

function output(result: CommitResult | null): AtomicWriteOutput {
  if (!result)
    return create(AtomicWriteOutputSchema, { status: AtomicWriteStatus.AW_CHECK_FAILURE });
  return create(AtomicWriteOutputSchema, {
    status: AtomicWriteStatus.AW_SUCCESS,
    versionstamp: versionstampBytes(result.versionstamp),
  });
}

/**
 * Applies one KV Connect atomic write through the core's commit pipeline, scoped to the
 * request's namespace; a failed check answers `AW_CHECK_FAILURE` and writes nothing.
 */
export async function atomicWrite(
  core: KvCore,
  space: ConnectSpace,
  write: AtomicWrite,
): Promise<AtomicWriteOutput> {
  // Counted before parsing, so an oversized write costs no decoding; the pipeline counts again.
  assertCounts(core.limits, write.checks.length, write.mutations.length + write.enqueues.length);
  const now = core.now();
  const checks: Check[] = write.checks.map((c) => ({
    key: space.storedKey(c.key),
    versionstamp: versionstampFromBytes(c.versionstamp),
  }));
  const mutations = write.mutations.map((m, i) => planMutation(space, m, i));
  const enqueues = write.enqueues.map((e) => planEnqueue(space, e, now));
  const result = await core.commit(
    { checks, mutations, ...(enqueues.length > 0 && { enqueues }) },
    space.keyspace,
    now,
  );
  return output(result);
}
