/**
 * Bench processes of their own (servers, subscribers), forked from a bench module that runs
 * its child part when started with `--child`.
 */
import { type ChildProcess, fork } from "node:child_process";

export interface Child<M> {
  readonly process: ChildProcess;
  /** The first message the child sent: it is ready. */
  readonly ready: M;
  /** Asks the child to close ("stop"), and kills it if it has not exited within 10 s. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// A parent that dies by an exception must not leave children running.
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Forks the module `file` with `--child` and `args`; `execArgv` is added to this process's flags
 * (e.g. `--cpu-prof`). Resolves once the child sends its first message.
 */
export function forkChild<M>(
  file: string,
  args: readonly string[],
  execArgv: readonly string[] = [],
): Promise<Child<M>> {
  // fork() reuses this process's flags, so the child loads TypeScript the same way.
  const child = fork(file, ["--child", ...args], {
    execArgv: [...process.execArgv, ...execArgv],
  });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => running.delete(child));

  async function stop(): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.send("stop");
    await exited;
    clearTimeout(timer);
  }

  return new Promise((resolve, reject) => {
    child.once("message", (ready: M) => resolve({ process: child, ready, stop }));
    child.once("exit", (code) => reject(new Error(`child ${args[0]} exited with ${code}`)));
  });
}
