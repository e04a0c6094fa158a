/**
 * The event hub: one listener on the driver's change feed turns each commit's key changes into
 * events and hands them to the subscriptions whose patterns match, found through a
 * {@link PatternIndex}. An event is made once per commit and shared by every subscriber it
 * reaches (see {@link SharedEvent.as}): a thousand subscribers on one pattern cost one decode
 * and one serialization, not a thousand.
 *
 * A subscription may resume after a versionstamp: it listens first, then replays the change log
 * from there, holding live commits back until the replay has caught up, then drops those the
 * replay already delivered, so nothing is missed or repeated at the seam. A resume point the log
 * no longer reaches fails with `COMPACTED` and the oldest point it does (etcd's model).
 */
import { NEWEST_VERSIONSTAMP } from "../../codec/versionstamp.js";
import type { ChangeEvent, ChangePage, KeyChange } from "../../contract/index.js";
import { KvError } from "../../errors.js";
import { unref } from "../timers.js";
import { ANY, type CompiledPattern, matches, PatternIndex, partIds } from "./pattern.js";

/** Something made once and shared: `as(make)` makes `make`'s value on first call only. */
class Shared {
  // Nearly every caller asks for one thing (the public event, or a frame): kept in fields.
  #firstMake: ((shared: never) => unknown) | undefined;
  #first: unknown;
  #made: Map<(shared: never) => unknown, unknown> | undefined;

  /** What `make` makes of this: made on the first call, then returned to every caller. */
  as<R>(make: (shared: this) => R): R {
    const key = make as (shared: never) => unknown;
    if (this.#firstMake === key) return this.#first as R;
    if (this.#firstMake === undefined) {
      this.#first = make(this);
      this.#firstMake = key;
      return this.#first as R;
    }
    this.#made ??= new Map();
    if (this.#made.has(key)) return this.#made.get(key) as R;
    const made = make(this);
    this.#made.set(key, made);
    return made;
  }
}

/** One key's change in one commit, shared by every subscriber it matches. */
export class SharedEvent extends Shared {
  constructor(
    readonly versionstamp: string,
    readonly change: KeyChange,
    /** Length of the stored key's namespace part. */
    readonly prefixLength: number,
  ) {
    super();
  }
}

/**
 * One commit's events that match one pattern, in key order: every subscriber of the pattern
 * gets the same batch, so what one makes of it (a serialized frame) serves them all.
 */
export class SharedBatch extends Shared {
  constructor(
    readonly versionstamp: string,
    readonly events: readonly SharedEvent[],
  ) {
    super();
  }
}

/** Where a subscription's events go. Called synchronously from the commit's notification. */
export interface EventSink {
  /** One commit's events that match. */
  events(batch: SharedBatch): void;
  /** Every matching event up to `versionstamp` has been delivered (sent when idle). */
  progress(versionstamp: string): void;
  /** The subscription ended on `error` (`COMPACTED`, or the database closed). */
  error(error: KvError): void;
}

export interface SubscribeOptions {
  /** Replay the matching events after this versionstamp first, from the change log. */
  readonly since?: string;
  /** Milliseconds of quiet after which the sink gets a progress marker (0: never). */
  readonly progressInterval?: number;
}

/** What the hub needs of the database. */
export interface EventSource {
  onChange(listener: (change: ChangeEvent) => void): () => void;
  changes(after: string, limit: number): Promise<ChangePage>;
}

const PAGE = 256;

/** The subscriptions of one pattern. */
interface Group {
  readonly pattern: CompiledPattern;
  readonly key: string;
  readonly subscriptions: Set<Subscription>;
}

const groupKey = (pattern: CompiledPattern) =>
  `${pattern.rest ? "#" : "."}${pattern.parts.map((p) => (p === ANY ? "+" : `=${p}`)).join("\u0001")}`;

export class EventHub {
  readonly #index = new PatternIndex<Group>();
  readonly #groups = new Map<string, Group>();
  readonly #all = new Set<Subscription>();
  #unsubscribe: (() => void) | null = null;
  /** Keeps a Node process alive while anyone subscribes, as an open socket would. */
  #keepAlive: ReturnType<typeof setInterval> | null = null;
  /** The highest versionstamp the feed has reported (every event up to it is delivered). */
  #latest = "";

  constructor(private readonly source: EventSource) {}

  /** Open subscriptions. */
  get size(): number {
    return this.#all.size;
  }

  /** Subscribes `sink` to the events of keys matching `pattern`. Returns the unsubscribe function. */
  subscribe(pattern: CompiledPattern, sink: EventSink, options: SubscribeOptions = {}): () => void {
    const subscription = new Subscription(pattern, sink, this, options);
    this.#all.add(subscription);
    if (!this.#unsubscribe) {
      this.#unsubscribe = this.source.onChange((change) => this.#dispatch(change));
      this.#keepAlive = setInterval(() => {}, 2 ** 31 - 1);
      // A subscriber that sees no commit still learns where the database stands.
      this.source
        .changes(NEWEST_VERSIONSTAMP, 0)
        .then((page) => this.#advance(page.head))
        .catch(() => {});
    }
    this.#join(subscription);
    if (options.since !== undefined) void this.#replay(subscription, options.since);
    return () => this.#remove(subscription);
  }

  #join(subscription: Subscription): void {
    const key = groupKey(subscription.pattern);
    let group = this.#groups.get(key);
    if (!group) {
      group = { pattern: subscription.pattern, key, subscriptions: new Set() };
      this.#groups.set(key, group);
      this.#index.add(group.pattern, group);
    }
    group.subscriptions.add(subscription);
  }

  get latest(): string {
    return this.#latest;
  }

  /** Ends every subscription; called when the database closes. */
  close(): void {
    for (const subscription of [...this.#all]) {
      subscription.fail(new KvError("DATABASE_CLOSED", "the database is closed"));
    }
  }

  #remove(subscription: Subscription): void {
    if (!this.#all.delete(subscription)) return;
    subscription.close();
    const group = this.#groups.get(groupKey(subscription.pattern));
    if (group?.subscriptions.delete(subscription) && group.subscriptions.size === 0) {
      this.#groups.delete(group.key);
      this.#index.delete(group.pattern, group);
    }
    if (this.#all.size === 0) {
      this.#unsubscribe?.();
      this.#unsubscribe = null;
      if (this.#keepAlive) clearInterval(this.#keepAlive);
      this.#keepAlive = null;
    }
  }

  /** Ends `subscription` with `error`. */
  fail(subscription: Subscription, error: KvError): void {
    this.#remove(subscription);
    subscription.sink.error(error);
  }

  #advance(versionstamp: string): void {
    if (versionstamp > this.#latest) this.#latest = versionstamp;
  }

  #dispatch(change: ChangeEvent): void {
    if (change.reset) {
      // The feed fell behind its log (a remote stream resumed too late): events were missed.
      for (const subscription of [...this.#all]) {
        this.fail(subscription, compacted(change.versionstamp, change.versionstamp));
      }
      return;
    }
    if (change.keys.length === 0) return;
    this.#advance(change.versionstamp);
    const entries = change.entries;
    if (!entries) {
      const error = new KvError("UNSUPPORTED", "this database's driver reports no key changes");
      for (const subscription of [...this.#all]) this.fail(subscription, error);
      return;
    }
    if (this.#index.size === 0) return;
    let matched: Map<Group, SharedEvent[]> | null = null;
    for (const keyChange of entries) {
      const ids = partIds(keyChange.key);
      let event: SharedEvent | null = null;
      this.#index.match(ids, (group) => {
        event ??= new SharedEvent(change.versionstamp, keyChange, ids[0]!.length);
        matched ??= new Map();
        const list = matched.get(group);
        if (list) list.push(event);
        else matched.set(group, [event]);
      });
    }
    if (matched === null) return;
    for (const [group, events] of matched as Map<Group, SharedEvent[]>) {
      const batch = new SharedBatch(change.versionstamp, events);
      for (const subscription of group.subscriptions) subscription.deliver(batch);
    }
  }

  /**
   * Replays the log after `since` to `subscription`, which the index holds meanwhile so live
   * commits queue up in it; then it goes live, skipping what the replay delivered.
   */
  async #replay(subscription: Subscription, since: string): Promise<void> {
    let after = since;
    try {
      for (;;) {
        const page = await this.source.changes(after, PAGE);
        if (subscription.closed) return;
        if (page.truncated) throw compacted(since, page.oldest);
        if (after > page.head) {
          throw new KvError(
            "INVALID_VERSIONSTAMP",
            `cannot resume after ${since}: the database's latest commit is ${page.head}`,
          );
        }
        this.#advance(page.head);
        for (const change of page.changes) {
          const events = matchAll(subscription.pattern, change);
          if (events.length > 0)
            subscription.sink.events(new SharedBatch(change.versionstamp, events));
          after = change.versionstamp;
          if (subscription.closed) return;
        }
        // A short page reached the head; live commits since are held in the subscription.
        if (page.changes.length < PAGE && !subscription.overflowed) break;
        subscription.overflowed = false;
      }
      subscription.goLive(after);
    } catch (error) {
      if (subscription.closed) return;
      this.fail(
        subscription,
        error instanceof KvError
          ? error
          : new KvError(
              "STORAGE_ERROR",
              `cannot read the change log: ${(error as Error).message}`,
              {
                cause: error,
              },
            ),
      );
    }
  }
}

/** The events of `change` whose keys match `pattern`, made for one subscriber. */
function matchAll(pattern: CompiledPattern, change: ChangeEvent): SharedEvent[] {
  const events: SharedEvent[] = [];
  for (const keyChange of change.entries ?? []) {
    const ids = partIds(keyChange.key);
    if (matches(pattern, ids))
      events.push(new SharedEvent(change.versionstamp, keyChange, ids[0]!.length));
  }
  return events;
}

function compacted(since: string, oldest: string): KvError {
  return new KvError(
    "COMPACTED",
    `the change log no longer holds the commits after ${since}; the oldest resume point is ${oldest}`,
    { details: { oldest } },
  );
}

/** Live commits a replaying subscription holds at most before it re-reads them from the log. */
const MAX_HELD = 10_000;

class Subscription {
  closed = false;
  /** Live commits held while replaying; `null` once live. */
  #held: SharedBatch[] | null = null;
  /** Live commits were dropped while replaying: the replay reads the log once more. */
  overflowed = false;
  /** The versionstamp of the last commit delivered. */
  #delivered = "";
  #quiet = true;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    readonly pattern: CompiledPattern,
    readonly sink: EventSink,
    private readonly hub: EventHub,
    options: SubscribeOptions,
  ) {
    if (options.since !== undefined) {
      this.#held = [];
      this.#delivered = options.since;
    }
    const interval = options.progressInterval ?? 0;
    if (interval > 0) {
      this.#timer = setInterval(() => this.#tick(), interval);
      unref(this.#timer);
    }
  }

  deliver(batch: SharedBatch): void {
    if (this.closed) return;
    if (this.#held) {
      if (this.#held.length >= MAX_HELD) {
        this.#held = [];
        this.overflowed = true;
      }
      this.#held.push(batch);
      return;
    }
    if (batch.versionstamp <= this.#delivered) return;
    this.#delivered = batch.versionstamp;
    this.#quiet = false;
    this.sink.events(batch);
  }

  /** Ends the replay at `after`: delivers the held live commits that came later. */
  goLive(after: string): void {
    const held = this.#held ?? [];
    this.#held = null;
    this.#delivered = after;
    for (const batch of held) this.deliver(batch);
  }

  #tick(): void {
    if (this.closed || this.#held) return;
    if (this.#quiet) {
      const latest = this.hub.latest;
      // biome-ignore lint/complexity/useMathMinMax: versionstamps are strings, ordered as text.
      const position = latest > this.#delivered ? latest : this.#delivered;
      // Before the database's position is known there is nothing to report.
      if (position !== "") this.sink.progress(position);
    }
    this.#quiet = true;
  }

  fail(error: KvError): void {
    this.hub.fail(this, error);
  }

  close(): void {
    this.closed = true;
    if (this.#timer) clearInterval(this.#timer);
  }
}
