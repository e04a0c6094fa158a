/**
 * The commit pipeline's rules: what every write must satisfy before it reaches a driver,
 * whichever face built it (the embedded API, transactions, queues, typed stores, the driver
 * protocol, KV Connect). `Database.commit` applies them to every write; builders that validate
 * eagerly (so a bad `set()` throws where it is called) call the same functions.
 *
 * Faces parse their wire format into stored bytes: they check that key bytes decode as a key and
 * value bytes as a value. Everything about limits, scope and history is decided here, once.
 */
import type { RawValue } from "../codec/value.js";
import { rawSize } from "../codec/value.js";
import type { AtomicWrite, Check, Enqueue, Mutation, RangeCheck } from "../contract/index.js";
import { describe, fail } from "../errors.js";
import type { KvLimits } from "./limits.js";
import type { Scope } from "./scope.js";

/** An atomic write as a face hands it to the pipeline: stored keys, encoded values, no clock. */
export interface WriteRequest {
  readonly checks: readonly Check[];
  readonly rangeChecks?: readonly RangeCheck[];
  readonly mutations: readonly Mutation[];
  readonly enqueues?: readonly Enqueue[];
}

/** The longest delay, backoff step or dedup window of a queue message: 30 days. */
export const MAX_DELAY = 30 * 24 * 60 * 60 * 1000;
/** Retries a message may be given. */
export const MAX_BACKOFF_STEPS = 20;
/** Keys one message may name to receive its value if it is never delivered. */
export const MAX_UNDELIVERED_KEYS = 100;
/** The largest millisecond timestamp a `Date` can hold. */
export const MAX_DATE = 8.64e15;
/** `encodeKey([versionstamp])`: the part a versionstamped key gains at commit. */
const VERSIONSTAMP_PART_SIZE = 22;
const U64_END = 1n << 64n;

/** Throws `TOO_MANY_CHECKS` or `TOO_MANY_MUTATIONS`; enqueues count as mutations. */
export function assertCounts(limits: KvLimits, checks: number, writes: number): void {
  if (checks > limits.maxChecks) {
    fail("TOO_MANY_CHECKS", `an atomic operation takes at most ${limits.maxChecks} checks`);
  }
  if (writes > limits.maxMutations) {
    fail(
      "TOO_MANY_MUTATIONS",
      `an atomic operation takes at most ${limits.maxMutations} mutations and enqueues together`,
    );
  }
}

/** Throws `KEY_TOO_LARGE` for a key of `size` encoded bytes (its namespace not counted). */
export function assertKeySize(limits: KvLimits, size: number): void {
  if (size > limits.maxKeySize) {
    fail("KEY_TOO_LARGE", `key is ${size} bytes encoded; the limit is ${limits.maxKeySize}`);
  }
}

/**
 * Throws `KEY_TOO_LARGE` for a key only read (a check, a range bound): one byte over the key
 * limit is allowed, as Deno KV allows it, so a range can end just after the largest key.
 */
export function assertReadKeySize(limits: KvLimits, size: number): void {
  if (size > limits.maxKeySize + 1) {
    fail(
      "KEY_TOO_LARGE",
      `a key read is ${size} bytes encoded; the limit is ${limits.maxKeySize + 1}`,
    );
  }
}

/** Throws `VALUE_TOO_LARGE` for a value over the limit. */
export function assertValueSize(limits: KvLimits, raw: RawValue): void {
  const size = rawSize(raw);
  if (size > limits.maxValueSize) {
    fail("VALUE_TOO_LARGE", `value is ${size} bytes encoded; the limit is ${limits.maxValueSize}`);
  }
}

/** Throws `INVALID_ARGUMENT` unless `at` is an instant a `Date` can hold. */
export function assertInstant(what: string, at: number): void {
  if (!Number.isSafeInteger(at) || at < 0 || at > MAX_DATE) {
    fail("INVALID_ARGUMENT", `${what} must be epoch milliseconds a Date can hold, got ${at}`);
  }
}

export interface PipelineContext {
  readonly limits: KvLimits;
  /** Whether writes to this user key (its bytes without the namespace) keep values in history. */
  keepsValues(userKey: Uint8Array): boolean;
}

/**
 * Checks a write against the limits and the caller's scope, and decides which mutations keep
 * their values in history. Throws the first violation's `KvError`; returns the driver's write.
 */
export function planCommit(
  context: PipelineContext,
  write: WriteRequest,
  scope: Scope,
  now: number,
): AtomicWrite {
  const { limits } = context;
  const enqueues = write.enqueues ?? [];
  const rangeChecks = write.rangeChecks ?? [];
  assertCounts(
    limits,
    write.checks.length + rangeChecks.length,
    write.mutations.length + enqueues.length,
  );
  for (const check of write.checks) {
    const prefixLength = scope.prefixLength(check.key);
    assertReadKeySize(limits, check.key.length - prefixLength);
  }
  for (const check of rangeChecks) {
    scope.assertRange(check.start, check.end);
    if (!Number.isSafeInteger(check.count) || check.count < 0)
      fail("INVALID_ARGUMENT", `a range check counts entries, got ${describe(check.count)}`);
  }
  const mutations = write.mutations.map((mutation, i) => planMutation(context, scope, mutation, i));
  for (const enqueue of enqueues) assertEnqueue(context, scope, enqueue, now);
  return {
    checks: write.checks,
    ...(rangeChecks.length > 0 && { rangeChecks }),
    mutations,
    ...(enqueues.length > 0 && { enqueues }),
    now,
  };
}

function planMutation(
  context: PipelineContext,
  scope: Scope,
  mutation: Mutation,
  index: number,
): Mutation {
  const extra = mutation.type === "set" && mutation.versionstampSuffix ? VERSIONSTAMP_PART_SIZE : 0;
  const userKey = userKeyOf(context, scope, mutation.key, extra);
  switch (mutation.type) {
    case "set":
    case "append":
    case "prepend":
      assertValueSize(context.limits, mutation.value);
      break;
    case "sum":
    case "min":
    case "max":
      if (
        typeof mutation.operand === "number"
          ? !Number.isFinite(mutation.operand)
          : typeof mutation.operand !== "bigint" ||
            mutation.operand < 0n ||
            mutation.operand >= U64_END
      )
        fail(
          "INVALID_MUTATION",
          `mutation ${index}: '${mutation.type}' takes a u64 or a finite number operand`,
        );
      break;
    case "delete":
      break;
    default:
      fail(
        "INVALID_MUTATION",
        `mutation ${index} has unknown type ${describe((mutation as Mutation).type)}`,
      );
  }
  if (mutation.type !== "delete" && mutation.expiresAt !== null)
    assertInstant(`mutation ${index}'s expiry`, mutation.expiresAt);
  const keepValue = context.keepsValues(userKey);
  // Most writes keep no value: they go on as they came, without a copy.
  return keepValue || mutation.keepValue !== undefined ? { ...mutation, keepValue } : mutation;
}

/** Throws unless a message fits the limits and names only keys and a queue inside `scope`. */
export function assertEnqueue(
  context: PipelineContext,
  scope: Scope,
  enqueue: Enqueue,
  now: number,
): void {
  scope.prefixLength(enqueue.queue);
  assertValueSize(context.limits, enqueue.value);
  if (!Number.isSafeInteger(enqueue.availableAt) || enqueue.availableAt - now > MAX_DELAY) {
    fail("INVALID_ARGUMENT", "a message is delivered at most 30 days after it is enqueued");
  }
  if (!Number.isSafeInteger(enqueue.priority) || Math.abs(enqueue.priority) > 2 ** 31) {
    fail(
      "INVALID_ARGUMENT",
      `priority must be an integer in [-2^31, 2^31], got ${enqueue.priority}`,
    );
  }
  const schedule = enqueue.backoffSchedule;
  if (
    schedule.length > MAX_BACKOFF_STEPS ||
    !schedule.every((ms) => Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DELAY)
  ) {
    fail(
      "INVALID_ARGUMENT",
      `backoffSchedule must be at most ${MAX_BACKOFF_STEPS} integers of milliseconds, each at most 30 days`,
    );
  }
  if (enqueue.keysIfUndelivered.length > MAX_UNDELIVERED_KEYS) {
    fail("INVALID_ARGUMENT", `keysIfUndelivered names at most ${MAX_UNDELIVERED_KEYS} keys`);
  }
  for (const key of enqueue.keysIfUndelivered) userKeyOf(context, scope, key);
  const { dedup } = enqueue;
  if (dedup !== undefined) {
    if (
      typeof dedup.key !== "string" ||
      dedup.key.length === 0 ||
      dedup.key.length > 256 ||
      dedup.key.includes("\0")
    )
      fail("INVALID_ARGUMENT", "dedupKey must be a string of 1–256 characters without NUL");
    if (!Number.isSafeInteger(dedup.until) || dedup.until - now > MAX_DELAY)
      fail("INVALID_ARGUMENT", "a dedup window is at most 30 days");
  }
}

/**
 * The user's part of a stored key, after checking its scope, that it has a part, and its size
 * once the commit adds `extra` bytes to it.
 */
function userKeyOf(context: PipelineContext, scope: Scope, key: Uint8Array, extra = 0): Uint8Array {
  const prefixLength = scope.prefixLength(key);
  if (key.length === prefixLength && extra === 0)
    fail("INVALID_KEY", "a key must have at least one part");
  assertKeySize(context.limits, key.length - prefixLength + extra);
  return key.subarray(prefixLength);
}
