/**
 * Logging as a layer around the store: an operation observer (see `core/observe.ts`) that writes
 * one structured pino line per operation. Operation lines are `debug`, so a server at the
 * default `info` writes only its request lines (see `server/requests.ts`) and the failures that
 * are the store's rather than the caller's (`STORAGE_ERROR`, `UNAVAILABLE`, anything not a
 * `KvError`), at `error`. Keys and error messages, which can quote what a caller sent, are
 * written only when asked for (`keys: true`); values never are.
 */
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from "pino";
import { toBase64Url } from "../codec/bytes.js";
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import type { KvOperation, KvOperationKey, KvOperationOutcome } from "../core/observe.js";
import { KvError } from "../errors.js";
import { currentRequest } from "./context.js";
import { outcomeLabel } from "./outcome.js";

/** The levels a logger can be set to, most severe first; `silent` writes nothing. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** The environment variable that sets the level of a logger Cellar creates. */
export const LOG_LEVEL_ENV = "CELLAR_LOG_LEVEL";

export interface LoggerOptions {
  /** Default: `CELLAR_LOG_LEVEL` from the environment, else `info`. */
  readonly level?: LevelWithSilent;
  /** Where the JSON lines go (any pino destination, a writable stream); default stdout. */
  readonly destination?: DestinationStream;
}

export interface LoggingOptions extends LoggerOptions {
  /** A logger of your own; `level` and `destination` then do not apply. */
  readonly logger?: Logger;
  /**
   * Write each operation's keys (`keys`: JSON keys, bigints as `{ $bigint }`, bytes as
   * `{ $bytes }`, ranges as `{ prefix }` or `{ start, end }`) and the message of what it threw.
   * Default false: a line says what happened, not to which keys.
   */
  readonly keys?: boolean;
}

/**
 * The level a logger Cellar creates starts at: `CELLAR_LOG_LEVEL` when set, else `info`.
 * Throws `INVALID_ARGUMENT` for a value that is not a level.
 */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LevelWithSilent {
  const value = env[LOG_LEVEL_ENV];
  if (value === undefined || value === "") return "info";
  if (!(LOG_LEVELS as readonly string[]).includes(value))
    throw new KvError(
      "INVALID_ARGUMENT",
      `${LOG_LEVEL_ENV} must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(value)}`,
    );
  return value as LevelWithSilent;
}

/**
 * A pino logger as Cellar sets one up: JSON lines, `name: "cellar"`, at `level` (default
 * {@link logLevelFromEnv}).
 *
 * @example
 * const logger = createLogger({ level: "debug", destination: pino.destination("cellar.log") });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? logLevelFromEnv();
  return options.destination
    ? pino({ name: "cellar", level }, options.destination)
    : pino({ name: "cellar", level });
}

/** Failures that say the store is failing rather than that the caller asked for too much. */
const STORE_FAILURES: ReadonlySet<string> = new Set(["STORAGE_ERROR", "UNAVAILABLE", "INTERNAL"]);

/**
 * Installs the logging layer on `kv`'s database: one line per operation, through any view or
 * face, to `options.logger` or a logger made by {@link createLogger}. Returns `kv`, so layers
 * compose: `withMetrics(withLogging(kv))`.
 *
 * A line (at `debug`; a store failure at `error`): `op`, `namespace`, `keyCount`, `durationMs`,
 * `outcome` (`ok`, `refused`, `error`), `code` when not ok, `requestId` when a server request
 * caused it, `keys` and `error` with `keys: true`, `err` (message and stack) on `error` lines.
 *
 * @example
 * const kv = withLogging(await openKv("data/app.db"), { level: "debug" });
 */
export function withLogging(kv: Kv, options: LoggingOptions = {}): Kv {
  const logger = options.logger ?? createLogger(options);
  const withKeys = options.keys === true;
  kv.observe((operation) => {
    if (!logger.isLevelEnabled("error")) return;
    const request = currentRequest();
    return (outcome) => {
      const failure = !outcome.ok && STORE_FAILURES.has(outcome.code ?? "");
      const level = failure ? "error" : "debug";
      if (!logger.isLevelEnabled(level)) return;
      logger[level](lineOf(operation, outcome, request?.requestId, withKeys, failure), "operation");
    };
  });
  return kv;
}

function lineOf(
  operation: KvOperation,
  outcome: KvOperationOutcome,
  requestId: string | undefined,
  withKeys: boolean,
  failure: boolean,
): Record<string, unknown> {
  const line: Record<string, unknown> = {
    op: operation.op,
    namespace: operation.namespace,
    keyCount: operation.keyCount,
    durationMs: Math.round(outcome.durationMs * 1000) / 1000,
    outcome: outcomeLabel(outcome),
  };
  if (outcome.code !== undefined) line.code = outcome.code;
  if (requestId !== undefined) line.requestId = requestId;
  if (withKeys) {
    line.keys = operation.keys().map(keyJson);
    if (outcome.error !== undefined) line.error = messageOf(outcome.error);
  }
  if (failure && outcome.error !== undefined) line.err = outcome.error;
  return line;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A key or range description as JSON, in the HTTP API's JSON key form. */
function keyJson(key: KvOperationKey): unknown {
  if ("prefix" in key) return { prefix: partsJson(key.prefix) };
  if ("start" in key) return { start: partsJson(key.start), end: partsJson(key.end) };
  return partsJson(key);
}

function partsJson(key: KvKey): unknown[] {
  return key.map((part) => {
    if (typeof part === "bigint") return { $bigint: part.toString() };
    if (part instanceof Uint8Array) return { $bytes: toBase64Url(part) };
    if (typeof part === "number" && !Number.isFinite(part)) return { $number: String(part) };
    if (Object.is(part, -0)) return { $number: "-0" };
    return part;
  });
}
