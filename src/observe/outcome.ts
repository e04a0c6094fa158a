/** How the layers name an operation's end, in log fields and metric labels alike. */
import type { KvOperationOutcome } from "../core/observe.js";

/** An operation did it, answered no, or threw. */
export type OutcomeLabel = "ok" | "refused" | "error";

/**
 * `ok`; `refused` for an answer of no that is not an error (a commit whose check failed, a
 * settlement of a lease that is gone); `error` when it threw.
 */
export function outcomeLabel(outcome: KvOperationOutcome): OutcomeLabel {
  if (outcome.ok) return "ok";
  return outcome.error === undefined ? "refused" : "error";
}
