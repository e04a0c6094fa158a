/**
 * `watchPrefix` on events: one batch per commit under a prefix, with the entry each changed key
 * had after that commit. A reader that falls behind costs bounded memory: past `MAX_QUEUED`
 * batches the stream lets go of the live feed and, once the reader catches up, replays the change
 * log from the last batch it queued, at the reader's pace. A resume point the log no longer
 * reaches becomes a `reset` batch at the head, from which it goes on.
 */
import { NEWEST_VERSIONSTAMP } from "../../codec/versionstamp.js";
import type { RawEntry } from "../../contract/index.js";
import type { KvError } from "../../errors.js";
import type { ChangeBatch } from "../watch.js";
import type { EventHub, SharedBatch, SharedEvent } from "./hub.js";
import type { CompiledPattern } from "./pattern.js";

const MAX_QUEUED = 1000;

export interface BatchSource<T> {
  readonly hub: EventHub;
  readonly pattern: CompiledPattern;
  readonly after: string | undefined;
  /** The database's latest versionstamp. */
  head(): Promise<string>;
  /** What a batch reports of a changed key: its entry after the commit, or `null` if gone. */
  entry(event: SharedEvent, raw: RawEntry | null): T;
}

export function batchStream<T>(source: BatchSource<T>): ReadableStream<ChangeBatch<T>> {
  const queue: ChangeBatch<T>[] = [];
  let position = source.after;
  let unsubscribe: (() => void) | null = null;
  let failure: KvError | null = null;
  let closed = false;
  let wake: (() => void) | null = null;
  const notify = () => {
    wake?.();
    wake = null;
  };

  const follow = (since: string) => {
    unsubscribe = source.hub.subscribe(
      source.pattern,
      {
        events(batch: SharedBatch) {
          if (queue.length >= MAX_QUEUED) {
            // Let go: the log has these commits, read again once the reader catches up.
            unsubscribe?.();
            unsubscribe = null;
            return;
          }
          queue.push({
            versionstamp: batch.versionstamp,
            entries: batch.events.map((event) => source.entry(event, event.change.entry)),
          });
          position = batch.versionstamp;
          notify();
        },
        progress() {},
        error(error) {
          unsubscribe = null;
          if (error.code === "COMPACTED" || error.code === "INVALID_VERSIONSTAMP") {
            position = undefined;
            queue.push({ versionstamp: "", entries: [], reset: true });
          } else if (error.code === "DATABASE_CLOSED") closed = true;
          else failure = error;
          notify();
        },
      },
      { since },
    );
  };

  return new ReadableStream<ChangeBatch<T>>(
    {
      async start() {
        position ??= await source.head();
        follow(position);
      },
      async pull(controller) {
        for (;;) {
          const batch = queue.shift();
          if (batch?.reset) {
            // Changes were missed: go on from the head, which the batch names.
            const head = await source.head();
            position = head;
            controller.enqueue({ versionstamp: head, entries: [], reset: true });
            if (!unsubscribe) follow(head);
            return;
          }
          if (batch) {
            controller.enqueue(batch);
            return;
          }
          if (failure) return controller.error(failure);
          if (closed) return controller.close();
          if (!unsubscribe) follow(position ?? NEWEST_VERSIONSTAMP);
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      },
      cancel() {
        closed = true;
        unsubscribe?.();
        notify();
      },
    },
    { highWaterMark: 0 },
  );
}
