/**
 * What the data commands print: NDJSON (one JSON document a line, keys and values in the HTTP
 * API's lossless JSON forms) with `--json` or when stdout is not a terminal, else a table sized
 * to the terminal.
 */
import type { KvKey } from "../codec/key.js";
import type { KvEntry } from "../core/types.js";
import { keyToJson, keyToPath, valueToJson } from "../wire/json.js";

/** True when the command prints NDJSON rather than a table. */
export function wantsJson(flags: { json?: boolean }): boolean {
  return flags.json === true || !process.stdout.isTTY;
}

/**
 * Writes one line, waiting when stdout's buffer is full, so a command that prints millions of
 * lines into a slow pipe holds a bounded amount of memory.
 */
export async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(`${line}\n`)) {
    await new Promise<void>((resolve) => process.stdout.once("drain", resolve));
  }
}

export const printJson = (document: unknown): Promise<void> => writeLine(JSON.stringify(document));

/** An entry's JSON form: `{ key, value, versionstamp, metadata? }`. */
export function entryToJson(entry: KvEntry): Record<string, unknown> {
  return {
    key: keyToJson(entry.key),
    value: valueToJson(entry.value),
    versionstamp: entry.versionstamp,
    ...(entry.metadata && { metadata: entry.metadata }),
  };
}

/** A key as a reader types it: its path (`users/~n:1`). */
export const showKey = (key: KvKey): string => keyToPath(key);

/** A value on one line: its lossless JSON text. */
export const showValue = (value: unknown): string => JSON.stringify(valueToJson(value)) ?? "";

/** A time as ISO 8601, or `-` for none. */
export const showTime = (ms: number | null | undefined): string =>
  ms === null || ms === undefined ? "-" : new Date(ms).toISOString();

/**
 * Prints rows under a header, each column as wide as its widest cell; the last column is cut to
 * the terminal's width (with `…`) so a row stays on one line.
 */
export async function printTable(
  header: readonly string[],
  rows: readonly string[][],
): Promise<void> {
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const columns = process.stdout.columns || 120;
  const line = (cells: readonly string[]) => {
    const text = cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("  ");
    return text.length > columns ? `${text.slice(0, columns - 1)}…` : text;
  };
  await writeLine(line(header));
  for (const row of rows) await writeLine(line(row));
}
