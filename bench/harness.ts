import { cpus, loadavg } from "node:os";

/** Runs `n` operations (synchronously or not); the harness picks `n`. */
export type Batch = (n: number) => unknown;

/** Operations per second, or why there is no figure. */
export type Ops = number | "hung" | "n/a";

export interface MeasureOptions {
  readonly budgetMs?: number;
  readonly warmupMs?: number;
  /** Operations one unit of `n` stands for (e.g. 1000 for a round of 1000 writes). */
  readonly opsPerCall?: number;
}

const SLICES = 5;

/** One thing to measure; `target` is the minimum Cellar ÷ this that the project aims for. */
export interface Contender extends MeasureOptions {
  readonly name: string;
  readonly batch: Batch;
  readonly target?: number;
  /** Filled by `batch` (see {@link timed}); the row reports the best slice's percentiles. */
  readonly latencies?: Latencies;
}

/** Median and 99th percentile, in milliseconds. */
export interface Latency {
  readonly p50: number;
  readonly p99: number;
}

/** Collects durations in milliseconds. */
export class Latencies {
  #samples: number[] = [];

  add(ms: number): void {
    this.#samples.push(ms);
  }

  reset(): void {
    this.#samples = [];
  }

  summary(): Latency | undefined {
    if (this.#samples.length === 0) return undefined;
    const sorted = Float64Array.from(this.#samples).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { p50: at(0.5), p99: at(0.99) };
  }
}

/** `op`, recording how long each call takes to settle. */
export function timed<A extends unknown[]>(
  op: (...args: A) => Promise<unknown>,
  latencies: Latencies,
): (...args: A) => Promise<void> {
  return async (...args) => {
    const start = performance.now();
    await op(...args);
    latencies.add(performance.now() - start);
  };
}

/**
 * A contender that runs `op(0)`, `op(1)`, … one call at a time (each awaited, synchronous or
 * not), recording each call's latency: for queries, where `i` picks what is asked.
 */
export function queries(
  name: string,
  op: (i: number) => unknown,
  options: Omit<Contender, "name" | "batch" | "latencies"> = {},
): Contender {
  const latencies = new Latencies();
  let i = 0;
  const batch = async (n: number) => {
    for (const end = i + n; i < end; i++) {
      const start = performance.now();
      await op(i);
      latencies.add(performance.now() - start);
    }
  };
  return { name, batch, latencies, ...options };
}

/**
 * Ops/s of each contender: the best of a few equal slices of its budget, after a warm-up.
 * Slices take turns across contenders, so that a change in the machine's load hits them all,
 * and the best slice is kept because other load only ever slows a slice down.
 */
export async function compare(contenders: readonly Contender[]): Promise<Row[]> {
  const best = contenders.map(() => 0);
  const latency: (Latency | undefined)[] = contenders.map(() => undefined);
  for (const c of contenders) await runFor(c.batch, c.warmupMs ?? 300);
  for (let slice = 0; slice < SLICES; slice++) {
    for (const [i, c] of contenders.entries()) {
      c.latencies?.reset();
      const { calls, ms } = await runFor(c.batch, (c.budgetMs ?? 1500) / SLICES);
      const ops = (calls * (c.opsPerCall ?? 1) * 1000) / ms;
      if (ops > best[i]!) {
        best[i] = ops;
        latency[i] = c.latencies?.summary();
      }
    }
  }
  return contenders.map((c, i) => ({
    name: c.name,
    ops: best[i]!,
    ...(c.target !== undefined && { target: c.target }),
    ...(latency[i] && { latency: latency[i] }),
  }));
}

/**
 * Runs every contender's `round` in turn, `rounds` times over, for scenarios that do not fit
 * {@link compare}'s batches (an external load generator, a queue drained to the end). Returns
 * each contender's results in round order; the caller keeps the best.
 */
export async function interleave<T>(
  contenders: readonly (() => Promise<T>)[],
  rounds: number,
): Promise<T[][]> {
  const results: T[][] = contenders.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, run] of contenders.entries()) results[i]!.push(await run());
  }
  return results;
}

export async function measure(batch: Batch, options: MeasureOptions = {}): Promise<number> {
  const [row] = await compare([{ name: "", batch, ...options }]);
  return row!.ops as number;
}

async function runFor(batch: Batch, budgetMs: number): Promise<{ calls: number; ms: number }> {
  const start = performance.now();
  let calls = 0;
  let n = 1;
  let now = start;
  while (now - start < budgetMs) {
    const before = now;
    await batch(n);
    now = performance.now();
    calls += n;
    // Grow chunks to ~10 ms so that reading the clock stays out of the figure.
    if (now - before < 10) n *= 2;
  }
  return { calls, ms: now - start };
}

export interface Row {
  readonly name: string;
  readonly ops: Ops;
  /** Minimum of this row's ratio (see {@link Section.baseline}) that the project aims for. */
  readonly target?: number;
  readonly latency?: Latency;
  /** Most milliseconds of p99 latency the project aims for. */
  readonly maxP99?: number;
}

/**
 * One scenario. By default its first row is Cellar and every other row a peer it is compared
 * with (Cellar ÷ peer).
 */
export interface Section {
  readonly title: string;
  readonly rows: readonly Row[];
  /** Printed under the title: load during the measurement, skipped peers. */
  readonly notes?: readonly string[];
  /**
   * The name of the row every other row is divided by (row ÷ baseline), for the cost of a
   * feature against the same store without it, or for Cellar rows against one peer; `null`:
   * no ratios, the rows are not alternatives (latencies of different paths).
   */
  readonly baseline?: string | null;
  /** What the figures count, when not operations per second (e.g. "rows/s", "bytes/entry"). */
  readonly unit?: string;
}

export interface TargetResult {
  readonly label: string;
  readonly required: string;
  readonly actual: string;
  readonly pass: boolean | null;
}

const formatOps = (ops: Ops) =>
  typeof ops === "number" ? Math.round(ops).toLocaleString("en-US") : ops;
const formatRatio = (r: number | null) =>
  r === null ? "n/a" : `${r < 10 ? r.toFixed(2) : r.toFixed(1)}×`;
const verdict = (pass: boolean | null) => (pass === null ? "n/a" : pass ? "PASS" : "FAIL");

const formatMs = (ms: number) => ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0);

function ratio(subject: Ops, peer: Ops): number | null {
  return typeof subject === "number" && typeof peer === "number" && peer > 0
    ? subject / peer
    : null;
}

/** Each row's ratio as the section defines it; null for the row compared against. */
function ratios(section: Section): (number | null)[] {
  const { rows, baseline } = section;
  if (baseline === null) return rows.map(() => null);
  if (baseline === undefined)
    return rows.map((row, i) => (i === 0 ? null : ratio(rows[0]!.ops, row.ops)));
  const base = rows.find((row) => row.name === baseline);
  if (!base) throw new Error(`${section.title}: no row named ${baseline}`);
  return rows.map((row) => (row === base ? null : ratio(row.ops, base.ops)));
}

/** A row's targets: its ratio's minimum and its p99's maximum. */
function rowTargets(section: Section, row: Row, r: number | null): TargetResult[] {
  const results: TargetResult[] = [];
  if (row.target !== undefined) {
    const against =
      typeof section.baseline === "string"
        ? `${row.name} vs ${section.baseline}`
        : `vs ${row.name}`;
    results.push({
      label: `${section.title}: ${against}`,
      required: `≥ ${row.target}×`,
      actual: formatRatio(r),
      pass: r === null ? null : r >= row.target,
    });
  }
  if (row.maxP99 !== undefined) {
    const p99 = row.latency?.p99;
    results.push({
      label: `${section.title}: ${row.name}`,
      required: `p99 ≤ ${row.maxP99} ms`,
      actual: p99 === undefined ? "n/a" : `${formatMs(p99)} ms`,
      pass: p99 === undefined ? null : p99 <= row.maxP99,
    });
  }
  return results;
}

const hasLatency = (section: Section) => section.rows.some((row) => row.latency);

function cells(section: Section): string[][] {
  const r = ratios(section);
  return section.rows.map((row, i) => {
    const target = rowTargets(section, row, r[i]!)
      .map((t) => `${t.required} ${verdict(t.pass)}`)
      .join(", ");
    const latency = row.latency ? [formatMs(row.latency.p50), formatMs(row.latency.p99)] : ["", ""];
    return [
      row.name,
      formatOps(row.ops),
      ...(hasLatency(section) ? latency : []),
      ...(section.baseline === null ? [] : [r[i] === null ? "" : formatRatio(r[i]!)]),
      target,
    ];
  });
}

function ratioHeader(section: Section): string[] {
  if (section.baseline === null) return [];
  return [section.baseline === undefined ? "Cellar ÷ peer" : `÷ ${section.baseline}`];
}

const header = (section: Section) => [
  "contender",
  section.unit ?? "ops/s",
  ...(hasLatency(section) ? ["p50 ms", "p99 ms"] : []),
  ...ratioHeader(section),
  "target",
];

export function targets(sections: readonly Section[]): TargetResult[] {
  return sections.flatMap((section) => {
    const r = ratios(section);
    return section.rows.flatMap((row, i) => rowTargets(section, row, r[i]!));
  });
}

function targetCells(results: readonly TargetResult[]): string[][] {
  return results.map((t) => [t.label, t.required, t.actual, verdict(t.pass)]);
}

const TARGET_HEADER = ["target", "required", "actual", "result"];

export function printSection(section: Section): void {
  console.log(`\n${section.title}`);
  for (const note of section.notes ?? []) console.log(`  ${note}`);
  console.log(textTable(header(section), cells(section)));
}

export function printTargets(results: readonly TargetResult[]): void {
  console.log("\nTargets");
  console.log(textTable(TARGET_HEADER, targetCells(results)));
}

function widths(header: string[], rows: string[][]): number[] {
  return header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
}

// Names left-aligned, figures right-aligned.
const pad = (cell: string, c: number, width: number) =>
  c === 0 ? cell.padEnd(width) : cell.padStart(width);

function textTable(header: string[], rows: string[][]): string {
  const w = widths(header, rows);
  const line = (r: string[]) =>
    r
      .map((cell, c) => pad(cell, c, w[c]!))
      .join("  ")
      .trimEnd();
  return [line(header), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

// Padded the way the repository's formatter lays out markdown tables, so lint stays clean.
function markdownTable(header: string[], rows: string[][]): string {
  const w = widths(header, rows);
  const line = (r: string[]) => `| ${r.map((cell, c) => pad(cell, c, w[c]!)).join(" | ")} |`;
  const rule = w.map((n, c) => (c === 0 ? "-".repeat(n) : `${"-".repeat(n - 1)}:`));
  return [line(header), `| ${rule.join(" | ")} |`, ...rows.map(line)].join("\n");
}

/** The one-minute load average. */
export const load = () => loadavg()[0]!.toFixed(1);

export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} CPUs (${cpu[0]?.model.trim() ?? "unknown"}), load ${load()}, Node ${process.version}, ${process.platform}-${process.arch}`;
}

export function markdown(sections: readonly Section[], notes: readonly string[]): string {
  return [
    "# Benchmark results",
    "",
    `${new Date().toISOString()} · ${machine()}`,
    "",
    "Generated by `npm run bench`; overwritten on every run. Ratios are Cellar's ops/s divided by the peer's.",
    "",
    ...notes.map((n) => `- ${n}`),
    ...sections.flatMap((s) => [
      "",
      `## ${s.title}`,
      "",
      ...(s.notes ?? []).flatMap((n) => [n, ""]),
      markdownTable(header(s), cells(s)),
    ]),
    "",
    "## Targets",
    "",
    markdownTable(TARGET_HEADER, targetCells(targets(sections))),
    "",
  ].join("\n");
}
