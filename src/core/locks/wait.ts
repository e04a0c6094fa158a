/**
 * Waiting for a lock: `kv.lock(name, { wait })` watches the lock's entry and tries again when
 * it is released or its lease runs out.
 */
import type { RawEntry } from "../../contract/index.js";
import type { Database } from "../database.js";
import type { Keyspace } from "../keyspace.js";
import type { KvLock } from "./lease.js";
import { lockHeld } from "./record.js";

/**
 * Waits for lock `name` to be free and takes it: it tries again whenever a watch of its entry
 * sees it deleted or expired, and when the holder's lease runs out (a timer at its expiry, in
 * case the watch is late), until `wait` ms have passed.
 */
export async function waitForLock(
  db: Database,
  keyspace: Keyspace,
  name: string,
  wait: number,
  attempt: () => Promise<KvLock | null>,
): Promise<KvLock> {
  const reader = db.watch([keyspace.encodePoint([name])], keyspace).getReader();
  const deadline = timer(wait);
  try {
    let next = reader.read();
    let expiresAt: number | null = null;
    for (;;) {
      const expiry: Timer | null =
        expiresAt === null ? null : timer(Math.max(0, expiresAt - db.now()));
      const woke: { read: ReadableStreamReadResult<(RawEntry | null)[]> } | "deadline" | "expiry" =
        await Promise.race([
          next.then((read) => ({ read })),
          deadline.done.then(() => "deadline" as const),
          ...(expiry ? [expiry.done.then(() => "expiry" as const)] : []),
        ]);
      expiry?.cancel();
      if (woke === "deadline") throw lockHeld(name, wait);
      if (typeof woke === "object") {
        // The stream ends only when the database closes: the attempt below reports that.
        const entry: RawEntry | null | undefined = woke.read.done ? null : woke.read.value[0];
        if (!woke.read.done) next = reader.read();
        if (entry) {
          expiresAt = entry.expiresAt;
          continue;
        }
      }
      const lock = await attempt();
      if (lock) return lock;
      // Someone else took it first: the watch reports their entry.
      expiresAt = null;
    }
  } finally {
    deadline.cancel();
    reader.cancel().catch(() => {});
  }
}

/** A timer as a promise; not unref'd, since a caller awaits it. */
interface Timer {
  readonly done: Promise<void>;
  cancel(): void;
}

function timer(ms: number): Timer {
  let handle: ReturnType<typeof setTimeout> | undefined;
  const done = new Promise<void>((resolve) => {
    handle = setTimeout(resolve, ms);
  });
  return { done, cancel: () => clearTimeout(handle) };
}
