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
