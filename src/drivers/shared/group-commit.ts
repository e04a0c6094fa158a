/**
 * Group commit scheduling, shared by the drivers that write through one connection or lock
 * (SQLite, PostgreSQL): jobs submitted in one turn of the event loop run together as one group,
 * so a burst of N writes costs one transaction (and one fsync) instead of N. Groups run one at a
 * time; jobs arriving while one runs form the next. What a group does is the driver's: it gets
 * the jobs and answers one outcome per job, in order, or throws to fail them all.
 */
import { KvError } from "../../errors.js";

export type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { ok: false; error: unknown };

interface Pending<J> {
  readonly job: J;
  readonly resolve: (value: never) => void;
  readonly reject: (error: unknown) => void;
}

export class GroupCommit<J> {
  #jobs: Pending<J>[] = [];
  #running: Promise<void> | null = null;
  #closed = false;
  readonly #groupListeners = new Set<(size: number) => void>();

  /**
   * @param runGroup runs one group: one outcome per job, in order; a throw fails every job of
   *   the group with that error
   * @param maxGroup jobs per group at most: bounds one transaction's size
   */
  constructor(
    private readonly runGroup: (jobs: readonly J[]) => Outcome[] | Promise<Outcome[]>,
    private readonly maxGroup = Number.POSITIVE_INFINITY,
  ) {}

  /** Runs `job` in the next group; resolves with its outcome's value, as `T`. */
  submit<T>(job: J): Promise<T> {
    if (this.#closed)
      return Promise.reject(new KvError("DATABASE_CLOSED", "the database is closed"));
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push({ job, resolve: resolve as (value: never) => void, reject });
      this.#running ??= this.#loop();
    });
  }

  /**
   * Calls `listener` with the number of jobs of each group as it starts running (for metrics).
   * Returns the function that removes it.
   */
  onGroup(listener: (size: number) => void): () => void {
    this.#groupListeners.add(listener);
    return () => {
      this.#groupListeners.delete(listener);
    };
  }

  /**
   * Refuses new jobs with `DATABASE_CLOSED`, then resolves once every job submitted before has
   * been committed or refused.
   */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#running) await this.#running;
  }

  async #loop(): Promise<void> {
    let waited = false;
    while (this.#jobs.length > 0) {
      // The rest of this turn's jobs join the group; jobs that queued while the last group ran
      // (on I/O) have waited already, and go at once.
      if (!waited) await new Promise((resolve) => setImmediate(resolve));
      waited = await this.#flush(this.#jobs.splice(0, this.maxGroup));
    }
    this.#running = null;
  }

  /** Runs one group and settles its jobs; true when more jobs queued while it ran. */
  async #flush(group: readonly Pending<J>[]): Promise<boolean> {
    for (const listener of this.#groupListeners) {
      try {
        listener(group.length);
      } catch {
        // A metric that fails to record must not leave the group's jobs unsettled.
      }
    }
    let outcomes: Outcome[];
    try {
      outcomes = await this.runGroup(group.map((pending) => pending.job));
    } catch (error) {
      for (const pending of group) pending.reject(error);
      return this.#jobs.length > 0;
    }
    const queued = this.#jobs.length > 0;
    group.forEach((pending, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) pending.resolve(outcome.value as never);
      else pending.reject(outcome.error);
    });
    return queued;
  }
}
