/**
 * Metrics as a layer around the store: an operation observer (see `core/observe.ts`) that
 * counts and times every operation in a prom-client `Registry` of the database's own, plus
 * gauges read when the registry is scraped (see `gauges.ts`). The server exposes the registry
 * at `GET /metrics` and `GET /api/metrics` and adds its HTTP request metrics to it.
 */
import { collectDefaultMetrics, Histogram, Registry } from "prom-client";
import type { Kv } from "../core/kv.js";
import { coreOf, type KvCore } from "../core/surface.js";
import { registerGauges } from "./gauges.js";
import { registerMirrorMetrics } from "./mirrors.js";
import { outcomeLabel } from "./outcome.js";
import { TallyCounter, TallyHistogram } from "./tally.js";

export interface MetricsOptions {
  /**
   * The registry to add Cellar's metrics to. Default: a new one for this database, so two
   * databases in one process never collide (prom-client refuses a metric name registered twice
   * in one registry).
   */
  readonly registry?: Registry;
  /** Node's own process metrics (`collectDefaultMetrics`) in the registry too; default true. */
  readonly defaultMetrics?: boolean;
  /**
   * `cellar_entries` and `cellar_stored_bytes` read every live entry, so a scrape reuses the
   * figures for `maxAgeMs` (default 30 s) before reading them again; `false` leaves them out.
   */
  readonly storage?: false | { readonly maxAgeMs: number };
  /** Queues `cellar_queue_messages` reports at most, first by stored name (default 100). */
  readonly maxQueues?: number;
}

/** Seconds: operations take microseconds in memory, milliseconds on disk, more over a network. */
const DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5,
];
/** Jobs per group commit; a group is at most a few thousand writes. */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

const layers = new WeakMap<KvCore, Registry>();

/**
 * Installs the metrics layer on `kv`'s database and returns `kv` (layers compose:
 * `withMetrics(withLogging(kv))`). One layer per database: a second call returns `kv` as it is.
 * Read the metrics with {@link metricsRegistry} (`await registry.metrics()` is Prometheus text),
 * or from a server's `GET /metrics`.
 *
 * @example
 * const kv = withMetrics(await openKv("data/app.db"));
 * console.log(await metricsRegistry(kv)!.metrics());
 */
export function withMetrics(kv: Kv, options: MetricsOptions = {}): Kv {
  const { core } = coreOf(kv);
  if (layers.has(core)) return kv;
  const registry = options.registry ?? new Registry();
  layers.set(core, registry);
  observeOperations(kv, registry);
  const batches = new Histogram({
    name: "cellar_commit_batch_size",
    help: "Jobs (writes, queue transitions, sweeps) committed together in one storage transaction by group commit",
    buckets: BATCH_BUCKETS,
    registers: [registry],
  });
  core.onCommitGroup((size) => batches.observe(size));
  registerGauges(kv, registry, {
    storageMaxAgeMs: options.storage === false ? null : (options.storage?.maxAgeMs ?? 30_000),
    maxQueues: options.maxQueues ?? 100,
  });
  registerMirrorMetrics(kv, registry);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return kv;
}

/** The registry of `kv`'s database's metrics layer; `undefined` when it has none. */
export function metricsRegistry(kv: Kv): Registry | undefined {
  return layers.get(coreOf(kv).core);
}

function observeOperations(kv: Kv, registry: Registry): void {
  const operations = new TallyCounter(registry, {
    name: "cellar_operations_total",
    help: "Operations by name and outcome (ok; refused: a failed check or a lost lease; error: it threw)",
    labelNames: ["op", "outcome"],
  });
  const errors = new TallyCounter(registry, {
    name: "cellar_errors_total",
    help: "Operations that threw, by name and error code",
    labelNames: ["op", "code"],
  });
  const durations = new TallyHistogram(registry, {
    name: "cellar_operation_duration_seconds",
    help: "Time from an operation's start to its end, by name",
    labelNames: ["op"],
    buckets: DURATION_BUCKETS,
  });
  kv.observe(({ op }) => (outcome) => {
    const label = outcomeLabel(outcome);
    operations.inc([op, label]);
    durations.observe([op], outcome.durationMs / 1000);
    if (label === "error") errors.inc([op, outcome.code ?? "INTERNAL"]);
  });
}
