/**
 * Events: what each commit did to the keys a pattern matches, pushed to subscribers in commit
 * order, resumable from the change log. `kv.subscribe` and `kv.events` are the public faces;
 * the hub (`hub.ts`) does the matching and the sharing.
 */
import { decodeKey, type KvKey } from "../../codec/key.js";
import { decodeValue } from "../../codec/value.js";
import {
  assertVersionstamp,
  formatVersionstamp,
  parseVersionstamp,
} from "../../codec/versionstamp.js";
import type { ChangeType, RawEntry } from "../../contract/index.js";
import { describe, fail, KvError } from "../../errors.js";
import { assertPositiveInteger } from "../limits.js";
import type { KvEntry } from "../types.js";
import { warn } from "../warn.js";
import type { EventHub, SharedEvent } from "./hub.js";
import type { CompiledPattern } from "./pattern.js";

export { ANY, type KvPattern, type KvPatternPart, REST } from "./pattern.js";

/**
 * One key's change in one commit. `entry` and `previous` carry metadata; a commit that changes
 * several matching keys gives one event per key, in key order, all with its versionstamp.
 * Events are shared between subscribers: treat them as read-only.
 */
export interface KvEvent<T = unknown> {
  readonly type: ChangeType;
  readonly key: KvKey;
  readonly versionstamp: string;
  /** The entry the commit left; `null` after a delete or an expiry. */
  readonly entry: KvEntry<T> | null;
  /** The live entry before the commit (for an expiry, the one that expired); `null` for a new key. */
  readonly previous: KvEntry<T> | null;
}

/** Every matching event up to `versionstamp` has been delivered: the subscriber is caught up. */
export interface KvProgress {
  readonly type: "progress";
  readonly versionstamp: string;
}

export interface KvSubscribeOptions {
  /**
   * Replay the matching events after this versionstamp (from an earlier event or progress
   * marker) before the live ones, with no gap and no duplicate. Fails with `COMPACTED` (the
   * error's `details.oldest` says the oldest point still available) when the change log no
   * longer reaches it.
   */
  readonly since?: string;
  /** Milliseconds of quiet after which a progress marker is sent (default: none). */
  readonly progressInterval?: number;
}

export interface KvEventListenerOptions extends KvSubscribeOptions {
  /** Called with each progress marker's versionstamp. */
  readonly onProgress?: (versionstamp: string) => void;
  /** Called once if the subscription ends on an error (`COMPACTED`, or the database closing). */
  readonly onError?: (error: KvError) => void;
}

export interface KvEventStreamOptions extends KvSubscribeOptions {
  /**
   * Events the stream holds for a reader that falls behind (default 10,000). Past it the stream
   * fails with `SLOW_CONSUMER`, whose `details.resume` is the versionstamp to resume after.
   */
  readonly bufferSize?: number;
}

const entryOf = (raw: RawEntry, key: KvKey): KvEntry => ({
  key,
  value: decodeValue(raw.value),
  versionstamp: raw.versionstamp,
  metadata: { ...raw.meta!, expiresAt: raw.expiresAt },
});

/** The public event a shared one stands for (made once per event, see `SharedEvent.as`). */
export function kvEventOf(shared: SharedEvent): KvEvent {
  const { change, versionstamp, prefixLength } = shared;
  const key = decodeKey(change.key.subarray(prefixLength));
  return {
    type: change.type,
    key,
    versionstamp,
    entry: change.entry && entryOf(change.entry, key),
    previous: change.previous && entryOf(change.previous, key),
  };
}

/** Checks the options both faces take. */
export function assertSubscribeOptions(options: KvSubscribeOptions): void {
  if (options.since !== undefined) {
    if (options.since === null)
      fail("INVALID_VERSIONSTAMP", "since is a versionstamp; omit it to start from now");
    assertVersionstamp(options.since);
  }
  assertPositiveInteger("progressInterval", options.progressInterval);
}

/** `kv.subscribe`: calls `listener` with each event. */
export function listen<T>(
  hub: EventHub,
  pattern: CompiledPattern,
  listener: (event: KvEvent<T>) => void,
  options: KvEventListenerOptions,
): () => void {
  if (typeof listener !== "function")
    fail("INVALID_ARGUMENT", `subscribe takes a listener function, got ${describe(listener)}`);
  return hub.subscribe(
    pattern,
    {
      events({ events }) {
        for (const event of events) {
          try {
            listener(event.as(kvEventOf) as KvEvent<T>);
          } catch (error) {
            warn(`cellar: an event listener threw: ${(error as Error).message}`);
          }
        }
      },
      progress(versionstamp) {
        options.onProgress?.(versionstamp);
      },
      error(error) {
        if (options.onError) options.onError(error);
        else if (error.code !== "DATABASE_CLOSED")
          warn(`cellar: a subscription ended: ${error.message}`);
      },
    },
    options,
  );
}

const DEFAULT_BUFFER = 10_000;

/**
 * `kv.events`: a stream of events (and progress markers, when asked for), holding at most
 * `bufferSize` for a slow reader.
 */
export function eventStream<T>(
  hub: EventHub,
  pattern: CompiledPattern,
  options: KvEventStreamOptions,
): ReadableStream<KvEvent<T> | KvProgress> {
  assertPositiveInteger("bufferSize", options.bufferSize);
  const bufferSize = options.bufferSize ?? DEFAULT_BUFFER;
  // The stream's own queue, so a reader that overflowed still reads what was queued before
  // the error (a controller's error() would drop it).
  const queue: (KvEvent<T> | KvProgress)[] = [];
  let end: KvError | "closed" | null = null;
  let wake: (() => void) | null = null;
  const finish = (reason: KvError | "closed") => {
    end ??= reason;
    unsubscribe();
    wake?.();
  };
  // The last commit whose events were all queued: where a reader resumes after overflow.
  let resume = options.since ?? "";
  const unsubscribe = hub.subscribe(
    pattern,
    {
      events({ versionstamp, events }) {
        if (end) return;
        if (queue.length + events.length > bufferSize) {
          // Nothing queued yet: resume just before this commit.
          if (resume === "") resume = formatVersionstamp(parseVersionstamp(versionstamp) - 1);
          finish(
            new KvError(
              "SLOW_CONSUMER",
              `the reader fell more than ${bufferSize} events behind; resume after ${resume}`,
              { details: { resume } },
            ),
          );
          return;
        }
        for (const event of events) queue.push(event.as(kvEventOf) as KvEvent<T>);
        resume = versionstamp;
        wake?.();
      },
      progress(versionstamp) {
        if (end || queue.length >= bufferSize) return;
        queue.push({ type: "progress", versionstamp });
        wake?.();
      },
      error(error) {
        finish(error.code === "DATABASE_CLOSED" ? "closed" : error);
      },
    },
    options,
  );
  return new ReadableStream<KvEvent<T> | KvProgress>(
    {
      async pull(controller) {
        while (queue.length === 0 && !end) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
        const item = queue.shift();
        if (item) controller.enqueue(item);
        else if (end === "closed") controller.close();
        else if (end) controller.error(end);
      },
      cancel() {
        finish("closed");
      },
    },
    { highWaterMark: 0 },
  );
}
