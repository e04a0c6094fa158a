/**
 * The metrics of a database's open mirrors (see `mirror/`), read from their statuses when the
 * registry is scraped: how far each lags, whether it reaches PostgreSQL, and what it has written,
 * applied, skipped and failed. A mirror started after `withMetrics` is reported too; a closed one
 * drops out.
 */
import type { Metric, Registry } from "prom-client";
import type { Kv } from "../core/kv.js";
import { mirrorStatuses } from "../mirror/registry.js";
import type { MirrorStatus } from "../mirror/status.js";

interface Definition {
  readonly name: string;
  readonly help: string;
  readonly type: "gauge" | "counter";
  readonly value: (status: MirrorStatus) => number;
}

const DEFINITIONS: readonly Definition[] = [
  {
    name: "cellar_mirror_lag_versionstamps",
    help: "Commits of the database between a mirror's checkpoint and the latest it knows of",
    type: "gauge",
    value: (s) => s.lag.versionstamps,
  },
  {
    name: "cellar_mirror_lag_seconds",
    help: "Age of the oldest change a mirror received and has not written yet (0 when caught up)",
    type: "gauge",
    value: (s) => s.lag.ms / 1000,
  },
  {
    name: "cellar_mirror_connected",
    help: "1 while a mirror's last statement to PostgreSQL succeeded, else 0",
    type: "gauge",
    value: (s) => (s.connected ? 1 : 0),
  },
  {
    name: "cellar_mirror_rows_written_total",
    help: "Rows a mirror upserted or deleted in its table",
    type: "counter",
    value: (s) => s.rowsWritten,
  },
  {
    name: "cellar_mirror_changes_applied_total",
    help: "Changes made in a mirror's table and applied to Cellar",
    type: "counter",
    value: (s) => s.changesApplied,
  },
  {
    name: "cellar_mirror_skipped_total",
    help: "Entries and rows a mirror skipped (a cell it could not form, a row it could not read)",
    type: "counter",
    value: (s) => s.skipped,
  },
  {
    name: "cellar_mirror_errors_total",
    help: "Failures of a mirror: outages, refused statements, skipped entries and rows",
    type: "counter",
    value: (s) => s.errors,
  },
  {
    name: "cellar_mirror_resyncs_total",
    help: "Times a mirror copied its prefix whole (first start, COMPACTED, another database)",
    type: "counter",
    value: (s) => s.resyncs,
  },
];

/** Adds the mirror metrics of `kv`'s database to `registry`, labelled by `table` and `direction`. */
export function registerMirrorMetrics(kv: Kv, registry: Registry): void {
  for (const { name, help, type, value } of DEFINITIONS) {
    const read = () => ({
      name,
      help,
      type,
      aggregator: "sum",
      values: mirrorStatuses(kv).map((status) => ({
        labels: { table: status.table, direction: status.direction },
        value: value(status),
      })),
    });
    const metric = { name, help, type, aggregator: "sum", get: async () => read(), reset() {} };
    // The registry reads a metric through these members only.
    registry.registerMetric(metric as unknown as Metric);
  }
}
