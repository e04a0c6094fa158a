/**
 * Watch: streams of entry arrays pushed from the commit path. One driver listener feeds a hub
 * that maps each watched key to its watchers, so a commit costs one lookup per changed key,
 * however many streams are open. A watcher reads its keys the moment a change wakes it (a
 * capture), and emits only states whose versionstamps differ from the last it emitted. While
 * its reader keeps up (nothing unread in the stream) every capture is emitted, in order; once
 * the reader falls behind, only the latest capture is kept, so a slow reader skips intermediate
 * states and always gets the latest one (as Deno KV does). A commit made through this database
 * resolves only after the captures it woke are read (see {@link WatchHub.settled}), so a reader
 * that keeps up sees the state of each write acknowledged before the next one. An entry that
 * expires wakes its watcher at its expiry instant, so an expired value is never the last word.
 */
import { keyId } from "../codec/key.js";
import type { ChangeEvent, KvDriver } from "../contract/index.js";
import { isOutage } from "../errors.js";
import { unref } from "./timers.js";

type Wake = () => void;
/** Wakes a key watcher; resolves once it has read the state the change left. */
type Capture = () => Promise<unknown>;

export class WatchHub {
  readonly #byKey = new Map<string, Set<Capture>>();
  readonly #queues = new Map<string, Set<Wake>>();
  readonly #streams = new Set<() => void>();
  #unsubscribe: (() => void) | null = null;

  /** Listens to the driver only while someone watches (a remote driver opens a stream for it). */
  constructor(private readonly driver: KvDriver) {}

  #listen(): void {
    this.#unsubscribe ??= this.driver.onChange((change) => this.#dispatch(change));
  }

  #release(): void {
    if (this.#byKey.size + this.#queues.size > 0) return;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }

  /** Calls `wake` whenever one of `keys` changes. Returns the unsubscribe function. */
  subscribe(keys: readonly Uint8Array[], wake: Capture): () => void {
    this.#listen();
    const ids = keys.map(keyId);
    for (const id of ids) {
      const set = this.#byKey.get(id) ?? new Set<Capture>();
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
    for (const set of this.#queues.values()) for (const wake of set) wake();
    this.#queues.clear();
  }

  /** Whether any stream watches keys (not queues). */
  get watchesKeys(): boolean {
    return this.#byKey.size > 0;
  }

  /**
   * Resolves once this process's watchers of `keys` have captured the state the commit
   * `versionstamp` left (or a later one). A driver whose change feed has not announced the
   * commit yet (the remote driver hears of it over a stream, after the write's reply) is told
   * of it here, so its watchers capture it before the write resolves. At once when no watcher
   * watches any of `keys`.
   */
  settled(versionstamp: string, keys: readonly Uint8Array[]): Promise<void> {
    if (!keys.some((key) => this.#byKey.has(keyId(key)))) return Promise.resolve();
    if (versionstamp > this.#latest) this.#dispatch({ versionstamp, keys });
    return this.#captures.get(versionstamp) ?? Promise.resolve();
  }

  /** The highest versionstamp dispatched so far. */
  #latest = "";
  /** Captures a change woke that are still being read, by the change's versionstamp. */
  readonly #captures = new Map<string, Promise<void>>();

  #dispatch(change: ChangeEvent): void {
    if (change.versionstamp > this.#latest) this.#latest = change.versionstamp;
    if (change.reset) {
      for (const set of this.#queues.values()) for (const wake of set) wake();
      this.#capture(change.versionstamp, new Set([...this.#byKey.values()].flatMap((s) => [...s])));
      return;
    }
    const woken = new Set<Wake>();
    for (const queue of change.queues ?? []) {
      const set = this.#queues.get(keyId(queue));
      if (set) for (const wake of set) woken.add(wake);
    }
    const captures = new Set<Capture>();
    for (const key of change.keys) {
      const set = this.#byKey.get(keyId(key));
      if (set) for (const capture of set) captures.add(capture);
    }
    this.#capture(change.versionstamp, captures);
    for (const wake of woken) wake();
  }

  #capture(versionstamp: string, captures: ReadonlySet<Capture>): void {
    if (captures.size === 0) return;
    const done = Promise.allSettled([...captures].map((capture) => capture())).then(() => {
      if (this.#captures.get(versionstamp) === done) this.#captures.delete(versionstamp);
    });
    this.#captures.set(versionstamp, done);
  }

  /**
   * What the hub holds now, for metrics: open key-watch streams, and the
   * subscriptions that wake on a change, by kind (a key watcher counts once however many keys
   * it names; `queues`: consumers waiting for a message).
   */
  get counts(): { streams: number; keys: number; queues: number } {
    const keyWatchers = new Set<Capture>();
    for (const set of this.#byKey.values()) for (const capture of set) keyWatchers.add(capture);
    let queues = 0;
    for (const set of this.#queues.values()) queues += set.size;
    return {
      streams: this.#streams.size,
      keys: keyWatchers.size,
      queues,
    };
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

/** What a watcher read: its keys' state, a signature of their versionstamps, the next expiry. */
export interface WatchState<T> {
  readonly value: T;
  readonly signature: string;
  readonly nextExpiry: number | null;
}

export interface WatchSource<T> {
  /** Reads the current state and the earliest expiry among its entries (or null). */
  read(): Promise<WatchState<T>>;
  subscribe(capture: Capture): () => void;
}

/**
 * A stream that emits `source`'s state first, then again whenever it changes: each change is
 * captured (read) when it wakes the stream, and every capture is emitted while the reader keeps
 * up; once the reader has an emitted state it has not read, only the latest capture is kept.
 */
export function watchStream<T>(
  hub: WatchHub,
  source: WatchSource<T>,
  now: () => number,
): ReadableStream<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let lastSignature: string | null = null;
  let stream: ReadableStreamDefaultController<T> | null = null;
  // States read when changes woke the stream, oldest first, not taken by a step yet.
  let captured: Promise<WatchState<T>>[] = [];
  const clear = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const subscribe = (raise: Wake) =>
    source.subscribe(() => {
      const read = source.read();
      // A failed read is reported by the step that takes it, or dropped with its capture.
      read.catch(() => {});
      const behind = stream !== null && (stream.desiredSize ?? 1) <= 0;
      captured = behind ? [read] : [...captured, read];
      raise();
      return read;
    });
  return signalledStream<T>(
    hub,
    subscribe,
    async (controller, signal) => {
      stream = controller;
      const taken = captured;
      captured = [];
      const states = taken.length > 0 ? await Promise.all(taken) : [await source.read()];
      const latest = states.at(-1)!;
      clear();
      if (latest.nextExpiry !== null) {
        timer = setTimeout(signal.raise, Math.max(0, latest.nextExpiry - now() + 1));
        unref(timer);
      }
      let sent = false;
      for (const state of states) {
        if (state.signature === lastSignature) continue;
        lastSignature = state.signature;
        controller.enqueue(state.value);
        sent = true;
      }
      return sent;
    },
    { stop: clear },
  );
}

/** One commit's changes under a watched prefix, as `watchPrefix` reports them. */
export interface ChangeBatch<T> {
  /** The commit these changes belong to; pass it as `after` to resume from here. */
  readonly versionstamp: string;
  /** The entry every key under the prefix had after the commit, in key order (`null` value: gone). */
  readonly entries: T[];
  /**
   * The change log no longer holds every commit since the resume point: changes were missed,
   * so re-read the state you hold. `entries` is empty then.
   */
  readonly reset?: true;
}
