/**
 * Counters and histograms for the hot paths (every operation, every request), tallied in plain
 * numbers and handed to prom-client only when the registry is scraped. prom-client's own `inc`
 * and `observe` hash their labels on every call, about 1 µs together: as much as a whole point
 * read in memory. Here a call walks one small map per label and adds; a scrape reads the tallies.
 *
 * Each is registered as prom-client's registry reads a metric (its `name`, `help`, `type` and
 * `get()`, answering the values a `Counter` or `Histogram` would), so the Prometheus text and the
 * JSON are prom-client's own.
 */
import type { Metric, Registry } from "prom-client";

type LabelValue = string | number;

interface Definition {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
}

interface ExportedValue {
  labels: Record<string, LabelValue>;
  value: number;
  metricName?: string;
}

/** A tree of maps, one level per label, whose leaves are `T`s. */
class LabelTree<T> {
  readonly #root = new Map<LabelValue, unknown>();

  constructor(
    private readonly depth: number,
    private readonly create: () => T,
  ) {}

  /** The leaf of `values` (one per label, in order), made on first use. */
  leaf(values: readonly LabelValue[]): T {
    let node = this.#root;
    for (let i = 0; i < this.depth - 1; i++) {
      let next = node.get(values[i]!) as Map<LabelValue, unknown> | undefined;
      if (!next) {
        next = new Map();
        node.set(values[i]!, next);
      }
      node = next;
    }
    const last = values[this.depth - 1]!;
    let leaf = node.get(last) as T | undefined;
    if (leaf === undefined) {
      leaf = this.create();
      node.set(last, leaf);
    }
    return leaf;
  }

  /** Every leaf with its label values. */
  *entries(): Generator<[LabelValue[], T]> {
    function* walk(
      node: Map<LabelValue, unknown>,
      path: LabelValue[],
      depth: number,
    ): Generator<[LabelValue[], T]> {
      for (const [value, child] of node) {
        if (depth === 1) yield [[...path, value], child as T];
        else yield* walk(child as Map<LabelValue, unknown>, [...path, value], depth - 1);
      }
    }
    yield* walk(this.#root, [], this.depth);
  }

  clear(): void {
    this.#root.clear();
  }
}

function labelsOf(names: readonly string[], values: readonly LabelValue[]) {
  const labels: Record<string, LabelValue> = {};
  names.forEach((name, i) => {
    labels[name] = values[i]!;
  });
  return labels;
}

/** Registers `values()` under `definition` in `registry`, as a metric of `type`. */
function register(
  registry: Registry,
  definition: Definition,
  type: "counter" | "histogram",
  values: () => ExportedValue[],
  reset: () => void,
): void {
  const { name, help } = definition;
  const metric = {
    name,
    help,
    type,
    aggregator: "sum",
    get: async () => ({ name, help, type, aggregator: "sum", values: values() }),
    reset,
  };
  // The registry reads a metric through these members only.
  registry.registerMetric(metric as unknown as Metric);
}

/** A counter with labels, e.g. operations by `op` and `outcome`. */
export class TallyCounter {
  readonly #counts: LabelTree<{ value: number }>;

  constructor(
    registry: Registry,
    private readonly definition: Definition,
  ) {
    this.#counts = new LabelTree(definition.labelNames.length, () => ({ value: 0 }));
    register(
      registry,
      definition,
      "counter",
      () =>
        [...this.#counts.entries()].map(([values, count]) => ({
          labels: labelsOf(this.definition.labelNames, values),
          value: count.value,
        })),
      () => this.#counts.clear(),
    );
  }

  /** Adds one to the series of `values`, one per label name in order. */
  inc(values: readonly LabelValue[]): void {
    this.#counts.leaf(values).value++;
  }
}

interface Buckets {
  /** Observations per bucket, not cumulative: `counts[i]` were at most `bounds[i]`. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram with labels, e.g. durations by `op`. */
export class TallyHistogram {
  readonly #series: LabelTree<Buckets>;

  constructor(
    registry: Registry,
    private readonly definition: Definition & { readonly buckets: readonly number[] },
  ) {
    const size = definition.buckets.length;
    this.#series = new LabelTree(definition.labelNames.length, () => ({
      counts: new Float64Array(size),
      sum: 0,
      count: 0,
    }));
    register(
      registry,
      definition,
      "histogram",
      () => this.#export(),
      () => this.#series.clear(),
    );
  }

  /** Records `value` in the series of `values`, one per label name in order. */
  observe(values: readonly LabelValue[], value: number): void {
    const series = this.#series.leaf(values);
    const bounds = this.definition.buckets;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) series.counts[i]!++;
    series.sum += value;
    series.count++;
  }

  /** What a prom-client `Histogram` answers: cumulative buckets, `+Inf`, sum and count. */
  #export(): ExportedValue[] {
    const { name, labelNames, buckets } = this.definition;
    const out: ExportedValue[] = [];
    for (const [values, series] of this.#series.entries()) {
      const labels = labelsOf(labelNames, values);
      let cumulative = 0;
      buckets.forEach((le, i) => {
        cumulative += series.counts[i]!;
        out.push({ labels: { le, ...labels }, value: cumulative, metricName: `${name}_bucket` });
      });
      out.push({
        labels: { le: "+Inf", ...labels },
        value: series.count,
        metricName: `${name}_bucket`,
      });
      out.push({ labels, value: series.sum, metricName: `${name}_sum` });
      out.push({ labels, value: series.count, metricName: `${name}_count` });
    }
    return out;
  }
}
