/**
 * Lets the process exit while `timer` is pending where the runtime supports it (Node's timer
 * objects); browsers' numeric timer ids have nothing to unref.
 *
 * @example
 * unref(setInterval(sweep, 1000));
 */
export function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}

interface Host {
  readonly process?: { readonly nextTick?: (callback: () => void) => void };
}
const nextTick = (globalThis as Host).process?.nextTick;

/**
 * Resolves once the microtasks queued so far, and those they queue in turn, have run, but before
 * any timer or I/O callback: where `process.nextTick` exists (Node), its queue runs only once the
 * microtask queue is empty. Elsewhere it resolves after the microtasks queued so far.
 *
 * @example
 * await afterMicrotasks(); // every promise settled in this turn has run its continuations
 */
export function afterMicrotasks(): Promise<void> {
  return new Promise((resolve) => (nextTick ? nextTick(resolve) : queueMicrotask(resolve)));
}
