/**
 * Reports a failure nobody awaits (a background sweep, a queue settlement): as a process warning
 * in Node, where tools collect those; on the console elsewhere.
 *
 * @example
 * sweep().catch((error) => warn(`cellar: expiry sweep failed: ${error.message}`));
 */
export function warn(message: string): void {
  const host = globalThis as { process?: { emitWarning?: (message: string) => void } };
  if (typeof host.process?.emitWarning === "function") host.process.emitWarning(message);
  else console.warn(message);
}
