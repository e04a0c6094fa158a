/**
 * `cellar/observe`: logging (pino) and metrics (prom-client) as layers around a database, built
 * on the operation seam every `Kv` has (`kv.observe`). Node only, and loaded only when imported:
 * `import "cellar"` loads neither library.
 *
 * @example
 * import { openKv } from "cellar";
 * import { metricsRegistry, withLogging, withMetrics } from "cellar/observe";
 * const kv = withMetrics(withLogging(await openKv("data/app.db"), { level: "debug" }));
 * const text = await metricsRegistry(kv)!.metrics(); // Prometheus text
 */
export type {
  KvObserver,
  KvOperation,
  KvOperationKey,
  KvOperationName,
  KvOperationOutcome,
} from "../core/observe.js";
export { currentRequest, type RequestContext, runInRequest } from "./context.js";
export {
  createLogger,
  LOG_LEVEL_ENV,
  LOG_LEVELS,
  type LoggerOptions,
  type LoggingOptions,
  logLevelFromEnv,
  withLogging,
} from "./logging.js";
export { type MetricsOptions, metricsRegistry, withMetrics } from "./metrics.js";
export { type OutcomeLabel, outcomeLabel } from "./outcome.js";
