/**
 * The operation seam: what a database tells observers about each of its operations, and the
 * dispatch that calls them. Every face's reads, writes and queue calls pass through `Database`
 * (and its queue handles), which reports them here, so one observer sees the embedded API, the
 * HTTP routes, the driver protocol and KV Connect alike. Logging and metrics (`cellar/observe`)
 * are observers; a user's own layer is one too.
 *
 * An observer is called synchronously as an operation starts, before it touches storage, and
 * may return a function called once as it ends, with its outcome and duration. Nothing here is
 * async middleware: the synchronous read path (`readSync`) stays synchronous. Without observers
 * an operation costs one size check more.
 */
import { decodeKey, type KvKey, startsWith } from "../codec/key.js";
import type { KeyRange, ReadRange } from "../contract/index.js";
import { KvError, type KvErrorCode } from "../errors.js";
import type { WriteRequest } from "./commit.js";
import { Keyspace } from "./keyspace.js";
import { namespaceOf, type Scope } from "./scope.js";
import { warn } from "./warn.js";

/**
 * What an operation is:
 * - reads: `get` (one key), `getMany` (several keys), `list` (any read of a range), `count`,
 *   `history`, `watch` (opening a key watch; its reads are reported as reads), `changes` (a
 *   read of the change log: prefix watches, `currentVersionstamp`);
 * - commits: `set` (exactly one set, no check, no enqueue), `delete` (exactly one delete, no
 *   check, no enqueue), `enqueue` (only messages, no check), `atomic` (anything else);
 * - queues: `dequeue`, `ack`, `nack`, `extend`, `queueStats`, `listDead`, `getDead`,
 *   `requeueDead`, `deleteDead`, `listQueues`;
 * - `dropNamespace`.
 */
export type KvOperationName =
  | "get"
  | "getMany"
  | "list"
  | "count"
  | "history"
  | "watch"
  | "changes"
  | "set"
  | "delete"
  | "enqueue"
  | "atomic"
  | "dequeue"
  | "ack"
  | "nack"
  | "extend"
  | "queueStats"
  | "listDead"
  | "getDead"
  | "requeueDead"
  | "deleteDead"
  | "listQueues"
  | "dropNamespace";

/**
 * A key an operation names, as {@link KvOperation.keys} describes it: a key (a point read, a
 * write, a queue's name as a one-part key), a prefix (a range that lists a prefix), or a
 * range's bounds. A bound one byte past a key (where a range starts after a cursor) is shown as
 * that key.
 */
export type KvOperationKey =
  | KvKey
  | { readonly prefix: KvKey }
  | { readonly start: KvKey; readonly end: KvKey };

/** One operation as it starts. */
export interface KvOperation {
  readonly op: KvOperationName;
  /**
   * The namespace it works in (`""`: the default one); `null` when it names no single one
   * (administration across the database).
   */
  readonly namespace: string | null;
  /**
   * How many keys it names: points read, ranges read, keys written plus messages enqueued, 1
   * for a count, a history, a queue call.
   */
  readonly keyCount: number;
  /**
   * The keys it names, without their namespace, decoded when called: observers that do not
   * log keys pay nothing for them.
   */
  keys(): KvOperationKey[];
}

/** How an operation ended. */
export interface KvOperationOutcome {
  /** True when it did what it was asked; false when it threw or a commit's check failed. */
  readonly ok: boolean;
  /**
   * Why not: the `KvError` code it threw (`"INTERNAL"` for any other error), or
   * `"CHECK_FAILED"` for a commit that resolved `{ ok: false }`, or `"INVALID_TOKEN"` for a
   * settlement of a lease that is gone.
   */
  readonly code?: KvErrorCode | "INTERNAL";
  /** What it threw, when it threw. */
  readonly error?: unknown;
  /** Milliseconds from its start (after the observers' start calls) to its end. */
  readonly durationMs: number;
}

/** Called with each operation as it starts; may return the function called as it ends. */
// biome-ignore lint/suspicious/noConfusingVoidType: an observer that returns nothing is a function of `void` return, which `undefined` would refuse.
export type KvObserver = (operation: KvOperation) => ((outcome: KvOperationOutcome) => void) | void;

type End = (outcome: KvOperationOutcome) => void;

/** The observers of one database and the dispatch to them. */
export class Observers {
  readonly #observers = new Set<KvObserver>();

  get size(): number {
    return this.#observers.size;
  }

  /** Adds `observer`; returns the function that removes it. */
  add(observer: KvObserver): () => void {
    if (typeof observer !== "function")
      throw new KvError("INVALID_ARGUMENT", "an observer is a function of the operation");
    // A wrapper per registration, so the same function added twice is called twice.
    const registered: KvObserver = (operation) => observer(operation);
    this.#observers.add(registered);
    return () => {
      this.#observers.delete(registered);
    };
  }

  /**
   * Runs `run` as `operation`: calls the observers, runs it, and reports how it ended (when it
   * settles, if it returns a promise). `failed` names the code of a result that is a refusal
   * rather than an answer (a commit's `null`).
   */
  observe<T>(
    operation: KvOperation,
    run: () => T,
    failed?: (result: Awaited<T>) => KvErrorCode | undefined,
  ): T {
    const ends = this.#start(operation);
    if (ends.length === 0) return run();
    const started = performance.now();
    let result: T;
    try {
      result = run();
    } catch (error) {
      report(ends, threw(error, started));
      throw error;
    }
    if (result instanceof Promise) {
      return result.then(
        (value) => {
          report(ends, answered(value, started, failed));
          return value;
        },
        (error) => {
          report(ends, threw(error, started));
          throw error;
        },
      ) as T;
    }
    report(ends, answered(result as Awaited<T>, started, failed));
    return result;
  }

  #start(operation: KvOperation): End[] {
    const ends: End[] = [];
    for (const observer of this.#observers) {
      try {
        const end = observer(operation);
        if (typeof end === "function") ends.push(end);
      } catch (error) {
        observerFailed(error);
      }
    }
    return ends;
  }
}

function answered<T>(
  value: T,
  started: number,
  failed?: (result: T) => KvErrorCode | undefined,
): KvOperationOutcome {
  const durationMs = performance.now() - started;
  const code = failed?.(value);
  return code === undefined ? { ok: true, durationMs } : { ok: false, code, durationMs };
}

function threw(error: unknown, started: number): KvOperationOutcome {
  const durationMs = performance.now() - started;
  const code = error instanceof KvError ? error.code : "INTERNAL";
  return { ok: false, code, error, durationMs };
}

function report(ends: readonly End[], outcome: KvOperationOutcome): void {
  for (const end of ends) {
    try {
      end(outcome);
    } catch (error) {
      observerFailed(error);
    }
  }
}

/** An observer's failure is its own: the operation goes on, and the failure is reported. */
function observerFailed(error: unknown): void {
  warn(`cellar: an operation observer threw: ${(error as Error)?.message ?? String(error)}`);
}

/**
 * What an operation names, kept as the caller's own arrays until `keys()` asks for them decoded:
 * building an operation allocates nothing but itself.
 */
type Named =
  | { readonly key: Uint8Array | null }
  | { readonly points: readonly ReadRange[] }
  | { readonly ranges: readonly KeyRange[] }
  | { readonly write: WriteRequest };

class Operation implements KvOperation {
  constructor(
    readonly op: KvOperationName,
    readonly namespace: string | null,
    readonly keyCount: number,
    private readonly named: Named,
  ) {}

  keys(): KvOperationKey[] {
    const named = this.named;
    if ("key" in named) return named.key ? [userKey(named.key)] : [];
    if ("points" in named) return named.points.map((range) => userKey(range.start));
    if ("ranges" in named) return named.ranges.map(describeRange);
    const { mutations, enqueues = [] } = named.write;
    return [...mutations.map((m) => userKey(m.key)), ...enqueues.map((e) => userKey(e.queue))];
  }
}

/** A read of `ranges`: `get`, `getMany` or `list`, unless `as` names it (`watch`). */
export function readOperation(
  ranges: readonly ReadRange[],
  scope: Scope,
  as?: KvOperationName,
): KvOperation {
  const points = ranges.every(isPoint);
  const op = as ?? (!points ? "list" : ranges.length === 1 ? "get" : "getMany");
  const named = points ? { points: ranges } : { ranges };
  return new Operation(op, namespaceIn(scope, ranges[0]?.start), ranges.length, named);
}

/** A commit: `set`, `delete`, `enqueue` or `atomic`. */
export function commitOperation(write: WriteRequest, scope: Scope): KvOperation {
  const { checks, mutations } = write;
  const enqueues = write.enqueues ?? [];
  const plain = checks.length === 0 && (write.rangeChecks?.length ?? 0) === 0;
  const only = plain && enqueues.length === 0 && mutations.length === 1 ? mutations[0] : undefined;
  const op =
    only?.type === "set" || only?.type === "delete"
      ? only.type
      : plain && mutations.length === 0 && enqueues.length > 0
        ? "enqueue"
        : "atomic";
  const first = mutations[0]?.key ?? enqueues[0]?.queue;
  const count = mutations.length + enqueues.length;
  return new Operation(op, namespaceIn(scope, first), count, { write });
}

/** An operation on one range (`count`). */
export function rangeOperation(
  op: KvOperationName,
  range: KeyRange,
  scope: Scope | null,
): KvOperation {
  return new Operation(op, namespaceIn(scope, range.start), 1, { ranges: [range] });
}

/**
 * An operation on one stored key, queue or namespace prefix (`history`, queue calls,
 * `dropNamespace`); `keys()` shows it decoded without its namespace.
 */
export function keyOperation(
  op: KvOperationName,
  key: Uint8Array,
  scope: Scope | null,
): KvOperation {
  return new Operation(op, namespaceIn(scope, key), 1, { key });
}

/** An operation on no key (`changes`). */
export function databaseOperation(op: KvOperationName): KvOperation {
  return new Operation(op, null, 0, { key: null });
}

/** A read of `[key, key + 0x00)`, at most one entry: what reading one key looks like. */
function isPoint(range: ReadRange): boolean {
  const { start, end } = range;
  return (
    range.limit === 1 &&
    end.length === start.length + 1 &&
    end[start.length] === 0 &&
    startsWith(end, start)
  );
}

function namespaceIn(scope: Scope | null, key: Uint8Array | undefined): string | null {
  if (scope instanceof Keyspace) return scope.namespace;
  if (key === undefined) return null;
  try {
    return namespaceOf(key).name;
  } catch {
    return null;
  }
}

/** A stored key without its namespace, decoded; a bound past a key as that key. */
function userKey(stored: Uint8Array): KvKey {
  let prefixLength = 0;
  try {
    prefixLength = namespaceOf(stored).prefixLength;
  } catch {
    // Bytes before any namespace (a scan's lower bound): nothing to strip.
  }
  const bytes = stored.subarray(prefixLength);
  try {
    return decodeKey(bytes);
  } catch {
    // A range bound one byte past a key (0x00 after it, 0xff after a prefix).
    try {
      return decodeKey(bytes.subarray(0, bytes.length - 1));
    } catch {
      return [];
    }
  }
}

/** `{ prefix }` for a range of the keys under a prefix, else its bounds. */
function describeRange({ start, end }: KeyRange): KvOperationKey {
  const last = start.length - 1;
  if (
    end.length === start.length &&
    start[last] === 0x00 &&
    end[last] === 0xff &&
    startsWith(end, start.subarray(0, last))
  )
    return { prefix: userKey(start) };
  return { start: userKey(start), end: userKey(end) };
}
