/**
 * Watch: streams of entry arrays pushed from the commit path. One driver listener feeds a hub
 * that maps each watched key to its watchers, so a commit costs one lookup per changed key,
 * however many streams are open. A watcher re-reads its keys when woken and emits only when a
 * versionstamp differs from what it last emitted; a slow reader skips intermediate states and
 * always gets the latest one (as Deno KV does). An entry that expires wakes its watcher at its
 * expiry instant, so an expired value is never the last word.
 */
import { compareBytes, keyId } from "../codec/key.js";
import { NEWEST_VERSIONSTAMP } from "../codec/versionstamp.js";
import type { ChangeEvent, ChangePage, KvDriver } from "../contract/index.js";
import { KvError } from "../errors.js";
import { unref } from "./timers.js";

type Wake = () => void;

export class WatchHub {
  readonly #byKey = new Map<string, Set<Wake>>();
  readonly #prefixes = new Map<Wake, Uint8Array[]>();
  readonly #queues = new Map<string, Set<Wake>>();
  readonly #streams = new Set<() => void>();
  #unsubscribe: (() => void) | null = null;

  /** Listens to the driver only while someone watches (a remote driver opens a stream for it). */
  constructor(private readonly driver: KvDriver) {}

  #listen(): void {
    this.#unsubscribe ??= this.driver.onChange((change) => this.#dispatch(change));
  }

  #release(): void {
    if (this.#byKey.size + this.#prefixes.size + this.#queues.size > 0) return;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /** Calls `wake` whenever one of `keys` changes. Returns the unsubscribe function. */
  subscribe(keys: readonly Uint8Array[], wake: Wake): () => void {
    this.#listen();
    const ids = keys.map(keyId);
    for (const id of ids) {
      const set = this.#byKey.get(id) ?? new Set<Wake>();
      this.#byKey.set(id, set);
      set.add(wake);
    }
    return () => {
      for (const id of ids) {
        const set = this.#byKey.get(id);
        set?.delete(wake);
        if (set?.size === 0) this.#byKey.delete(id);
      }
      this.#release();
    };
  }

  /** Calls `wake` whenever a key starting with one of `prefixes` changes. */
  subscribePrefixes(prefixes: readonly Uint8Array[], wake: Wake): () => void {
    this.#listen();
    this.#prefixes.set(wake, [...prefixes]);
    return () => {
      this.#prefixes.delete(wake);
      this.#release();
    };
  }

  /** Calls `wake` whenever `queue` has a message ready for delivery. */
  subscribeQueue(queue: Uint8Array, wake: Wake): () => void {
    this.#listen();
    const id = keyId(queue);
    const set = this.#queues.get(id) ?? new Set<Wake>();
    this.#queues.set(id, set);
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0) this.#queues.delete(id);
      this.#release();
    };
  }

  /** Registers a stream's `end` function, called when the database closes. */
  track(end: () => void): () => void {
    this.#streams.add(end);
    return () => this.#streams.delete(end);
  }

  /** Ends every open stream; called when the database closes. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const end of this.#streams) end();
    this.#streams.clear();
    this.#byKey.clear();
    this.#prefixes.clear();
    for (const set of this.#queues.values()) for (const wake of set) wake();
    this.#queues.clear();
  }

  #dispatch(change: ChangeEvent): void {
    if (change.reset) {
      for (const set of [...this.#byKey.values(), ...this.#queues.values()])
        for (const wake of set) wake();
      for (const wake of this.#prefixes.keys()) wake();
      return;
    }
    const woken = new Set<Wake>();
    for (const queue of change.queues ?? []) {
      const set = this.#queues.get(keyId(queue));
      if (set) for (const wake of set) woken.add(wake);
    }
    for (const key of change.keys) {
      const set = this.#byKey.get(keyId(key));
      if (set) for (const wake of set) woken.add(wake);
    }
    if (this.#prefixes.size > 0) {
      for (const [wake, prefixes] of this.#prefixes) {
        if (change.keys.some((key) => prefixes.some((p) => startsWith(key, p)))) {
          woken.add(wake);
        }
      }
    }
    for (const wake of woken) wake();
  }
}

/** A wake-up flag a stream's pull loop waits on; raised at first so the first pull reads. */
export class Signal {
  #raised = true;
  #resolve: (() => void) | null = null;
  #ended = false;

  readonly raise = (): void => {
    this.#raised = true;
    this.#resolve?.();
  };

  get ended(): boolean {
    return this.#ended;
  }

  end(): void {
    this.#ended = true;
    this.#resolve?.();
  }

  /** Waits until raised, then lowers it; resolves false if the stream ended meanwhile. */
  async take(): Promise<boolean> {
    while (!this.#raised && !this.#ended) {
      await new Promise<void>((resolve) => {
        this.#resolve = resolve;
      });
      this.#resolve = null;
    }
    this.#raised = false;
    return !this.#ended;
  }
}

/**
 * A pull stream driven by a {@link Signal}: subscribed on start, closed with the database, and
 * `step` runs each time the signal is raised until it has enqueued something.
 */
const isOutage = (error: unknown) =>
  error instanceof KvError && (error.code === "STORAGE_ERROR" || error.code === "UNAVAILABLE");

function signalledStream<T>(
  hub: WatchHub,
  subscribe: (wake: Wake) => () => void,
  step: (controller: ReadableStreamDefaultController<T>, signal: Signal) => Promise<boolean>,
  options: { start?: () => Promise<void>; stop?: () => void } = {},
): ReadableStream<T> {
  const signal = new Signal();
  let release: (() => void) | null = null;
  const stop = () => {
    signal.end();
    release?.();
    options.stop?.();
  };
  return new ReadableStream<T>(
    {
      async start(controller) {
        const unsubscribe = subscribe(signal.raise);
        const untrack = hub.track(() => {
          if (signal.ended) return;
          stop();
          controller.close();
        });
        release = () => {
          unsubscribe();
          untrack();
        };
        await options.start?.();
      },
      async pull(controller) {
        for (let failures = 0; ; ) {
          try {
            while (await signal.take()) {
              const sent = await step(controller, signal);
              failures = 0;
              if (sent) return;
            }
            return;
          } catch (error) {
            // Storage that is failing for a while (a lost PostgreSQL server) is read again
            // later, with a growing pause: the stream outlives an outage. Anything else ends it.
            if (!isOutage(error) || signal.ended) {
              stop();
              controller.error(error);
              return;
            }
            failures++;
            await new Promise((resolve) =>
              setTimeout(resolve, Math.min(5000, 100 * 2 ** failures)),
            );
            signal.raise();
          }
        }
      },
      cancel: stop,
    },
    { highWaterMark: 1 },
  );
}

export interface WatchSource<T> {
  /** Reads the current state and the earliest expiry among its entries (or null). */
  read(): Promise<{ value: T; signature: string; nextExpiry: number | null }>;
  subscribe(wake: Wake): () => void;
}

/**
 * A stream that emits `source`'s state first, then again whenever it changes.
 */
export function watchStream<T>(
  hub: WatchHub,
  source: WatchSource<T>,
  now: () => number,
): ReadableStream<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let lastSignature: string | null = null;
  const clear = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  return signalledStream<T>(
    hub,
    source.subscribe,
    async (controller, signal) => {
      const state = await source.read();
      clear();
      if (state.nextExpiry !== null) {
        timer = setTimeout(signal.raise, Math.max(0, state.nextExpiry - now() + 1));
        unref(timer);
      }
      if (state.signature === lastSignature) return false;
      lastSignature = state.signature;
      controller.enqueue(state.value);
      return true;
    },
    { stop: clear },
  );
}

/** One commit's changes under a watched prefix, as `watchPrefix` reports them. */
export interface ChangeBatch<T> {
  /** The commit these changes belong to; pass it as `after` to resume from here. */
  readonly versionstamp: string;
  /** The current entry of every key under the prefix the commit changed (`null` value: gone). */
  readonly entries: T[];
  /**
   * The change log no longer holds every commit since the resume point: changes were missed,
   * so re-read the state you hold. `entries` is empty then.
   */
  readonly reset?: true;
}

export interface ChangeSource<T> {
  /** Reads the change log: commits after `after`, at most `limit`. */
  changes(after: string, limit: number): Promise<ChangePage>;
  readonly prefix: Uint8Array;
  readonly after: string | undefined;
  subscribe(wake: Wake): () => void;
  /** Reads the current entries of the given stored keys. */
  read(keys: Uint8Array[]): Promise<T[]>;
}

const PAGE = 100;

/** A stream of {@link ChangeBatch}es, woken from the commit path and read from the change log. */
export function changeStream<T>(
  hub: WatchHub,
  source: ChangeSource<T>,
): ReadableStream<ChangeBatch<T>> {
  let after = source.after;
  const inPrefix = (key: Uint8Array) =>
    key.length > source.prefix.length && startsWith(key, source.prefix);
  return signalledStream<ChangeBatch<T>>(
    hub,
    source.subscribe,
    async (controller, signal) => {
      const page = await source.changes(after!, PAGE);
      // A resume point the log no longer reaches, or one the database never reached (a
      // versionstamp from before a restore, or from another database): re-read from the head.
      if (page.truncated || after! > page.head) {
        after = page.head;
        controller.enqueue({ versionstamp: page.head, entries: [], reset: true });
        return true;
      }
      // A full page may have more behind it: look again without waiting for a commit.
      if (page.changes.length === PAGE) signal.raise();
      const changes = page.changes
        .map((change) => ({
          versionstamp: change.versionstamp,
          keys: change.keys.filter(inPrefix),
        }))
        .filter((change) => change.keys.length > 0);
      after = page.changes.at(-1)?.versionstamp ?? after;
      if (changes.length === 0) return false;
      // One read for the whole page, so its batches are queued together.
      const entries = await source.read(changes.flatMap((change) => change.keys));
      let start = 0;
      for (const change of changes) {
        const end = start + change.keys.length;
        controller.enqueue({
          versionstamp: change.versionstamp,
          entries: entries.slice(start, end),
        });
        start = end;
      }
      return true;
    },
    {
      start: async () => {
        after ??= (await source.changes(NEWEST_VERSIONSTAMP, 0)).head;
      },
    },
  );
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return compareBytes(bytes.subarray(0, prefix.length), prefix) === 0;
}
