/**
 * Fan-out of events to many connections (SSE and WebSocket), at a cost that does not grow with
 * the number of connections per commit:
 *
 * - Connections that start live on the same namespace and pattern share one `Broadcast`: one
 *   subscription to the event hub, one serialization of each commit (`SharedBatch.as`), and one
 *   buffer per flush that every connection writes as it is.
 * - Commits are flushed at once (next turn of the event loop) when the stream was quiet, else
 *   once per window, so a busy database costs each connection one write per flush, not one per
 *   commit. The window grows with the connections a broadcast feeds (`FLUSH_MS`, or
 *   `PER_CONNECTION_MS` for each): a write to a socket costs tens of microseconds, mostly in the
 *   kernel, so a thousand subscribers flushed every 20 ms would take the server's whole time.
 * - A connection holding more than `maxBuffered` unsent bytes (a slow reader) is closed after
 *   the commits already queued, with `SLOW_CONSUMER` naming the last versionstamp written; the
 *   ids it received say where to resume (`Last-Event-ID`, `since`), and the change log replays
 *   the rest.
 * - A connection that resumes (`since`) replays through a subscription of its own, which then
 *   goes on live.
 *
 * A broadcast whose last connection leaves unsubscribes, so memory returns to its idle level.
 */
import type { EventHub, SharedBatch } from "../core/events/hub.js";
import type { CompiledPattern } from "../core/events/pattern.js";
import { KvError } from "../errors.js";

/** Milliseconds between flushes while commits keep coming, for a few connections. */
const FLUSH_MS = 20;
/** …and per connection, for many: 1,000 subscribers are written at most 10 times a second. */
const PER_CONNECTION_MS = 0.25;

/** How a stream kind writes its items: commit batches, progress markers, a final error. */
export interface Framing {
  /** The bytes of one commit's events (made once per batch: `batch.as(framing.batch)`). */
  readonly batch: (batch: SharedBatch) => string;
  readonly progress: (versionstamp: string) => string;
  /** The last item before closing on an error; `null` to close without one. */
  readonly error: (error: KvError) => string | null;
  /**
   * When given, a resume point the change log no longer holds is not an error: this item (a
   * reset at `head`) is written and the stream goes on from `head`.
   */
  readonly reset?: (head: string) => string;
  /** One write of several items. */
  readonly join: (items: readonly string[]) => Uint8Array;
}

/** Where one connection's bytes go. */
export interface Outlet {
  /** Writes a chunk; returns the bytes now waiting to be sent. */
  write(chunk: Uint8Array): number;
  /**
   * Ends the connection after what was written. `reason` is the error it ends on: the stream's
   * own (already written as the framing's last item), or `SLOW_CONSUMER` for a reader that fell
   * behind, with `details.resume`, the last versionstamp written to it.
   */
  close(reason: KvError): void;
}

export interface OpenOptions {
  readonly since?: string;
  /** Milliseconds of quiet after which a progress marker is written. */
  readonly progressInterval: number;
  /** Unsent bytes past which a connection is closed (a slow reader). */
  readonly maxBuffered: number;
}

class Connection {
  constructor(
    readonly outlet: Outlet,
    readonly maxBuffered: number,
  ) {}
  closed = false;

  /** Writes `chunk`, whose last item is at `versionstamp`; closes a reader that fell behind. */
  write(chunk: Uint8Array, versionstamp: string): void {
    if (this.closed) return;
    if (this.outlet.write(chunk) > this.maxBuffered) {
      this.close(
        new KvError(
          "SLOW_CONSUMER",
          `the client fell more than ${this.maxBuffered} bytes behind; resume after ${versionstamp}`,
          { details: { resume: versionstamp } },
        ),
      );
    }
  }

  close(reason: KvError): void {
    if (this.closed) return;
    this.closed = true;
    this.outlet.close(reason);
  }
}

/** The connections of one pattern (or one resuming connection), fed by one subscription. */
class Broadcast {
  readonly connections = new Set<Connection>();
  #pending: string[] = [];
  /** The versionstamp of the last pending item. */
  #pendingAt = "";
  #timer: { cancel(): void } | null = null;
  #lastFlush = 0;
  #pattern: CompiledPattern | null = null;
  #progressInterval = 0;
  #unsubscribe: (() => void) | null = null;

  constructor(
    private readonly hub: EventHub,
    private readonly framing: Framing,
    private readonly onEmpty: () => void,
  ) {}

  start(pattern: CompiledPattern, since: string | undefined, progressInterval: number): void {
    this.#pattern = pattern;
    this.#progressInterval = progressInterval;
    this.#unsubscribe = this.hub.subscribe(
      pattern,
      {
        events: (batch) => {
          this.#pending.push(batch.as(this.framing.batch));
          this.#pendingAt = batch.versionstamp;
          this.#schedule();
        },
        progress: (versionstamp) => {
          this.#pending.push(this.framing.progress(versionstamp));
          this.#pendingAt = versionstamp;
          this.#schedule();
        },
        error: (error) => this.#end(error),
      },
      { progressInterval, ...(since !== undefined && { since }) },
    );
  }

  #schedule(): void {
    if (this.#timer) return;
    const window = Math.max(FLUSH_MS, this.connections.size * PER_CONNECTION_MS);
    const wait = window - (Date.now() - this.#lastFlush);
    if (wait <= 0) {
      // Quiet until now: the commit goes out on the next turn, not after a timer's millisecond.
      const immediate = setImmediate(() => this.#flush());
      this.#timer = { cancel: () => clearImmediate(immediate) };
    } else {
      const timeout = setTimeout(() => this.#flush(), wait);
      this.#timer = { cancel: () => clearTimeout(timeout) };
    }
  }

  #flush(): void {
    this.#timer = null;
    this.#lastFlush = Date.now();
    const items = this.#pending;
    this.#pending = [];
    if (items.length > 0) this.#write(items);
  }

  #write(items: readonly string[]): void {
    const chunk = this.framing.join(items);
    for (const connection of this.connections) {
      connection.write(chunk, this.#pendingAt);
      if (connection.closed) this.connections.delete(connection);
    }
    if (this.connections.size === 0) this.stop();
  }

  #end(error: KvError): void {
    const reset = this.framing.reset;
    const head = this.hub.latest;
    if (reset && head && (error.code === "COMPACTED" || error.code === "INVALID_VERSIONSTAMP")) {
      this.#pending.push(reset(head));
      this.#pendingAt = head;
      this.#flush();
      this.start(this.#pattern!, head, this.#progressInterval);
      return;
    }
    this.#flush();
    const last = error.code === "DATABASE_CLOSED" ? null : this.framing.error(error);
    const chunk = last === null ? null : this.framing.join([last]);
    for (const connection of this.connections) {
      // The error goes out however much the connection holds: it is the last thing it gets.
      if (chunk && !connection.closed) connection.outlet.write(chunk);
      connection.close(error);
    }
    this.connections.clear();
    this.stop();
  }

  leave(connection: Connection): void {
    this.connections.delete(connection);
    if (this.connections.size === 0) this.stop();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.onEmpty();
  }
}

/** The broadcasts of one server, by namespace, pattern and framing. */
export class Broadcaster {
  readonly #shared = new Map<string, Broadcast>();

  /**
   * Connects `outlet` to the events of `pattern` (compiled in its namespace), framed by
   * `framing`. Returns the function that disconnects it.
   */
  open(
    hub: EventHub,
    pattern: CompiledPattern,
    framing: Framing,
    outlet: Outlet,
    options: OpenOptions,
  ): () => void {
    const connection = new Connection(outlet, options.maxBuffered);
    if (options.since !== undefined) {
      const own = new Broadcast(hub, framing, () => {});
      own.connections.add(connection);
      own.start(pattern, options.since, options.progressInterval);
      return () => own.leave(connection);
    }
    const key = `${shareKey(framing)}\u0000${pattern.rest ? "#" : "."}${pattern.parts.map(String).join("\u0001")}`;
    let broadcast = this.#shared.get(key);
    if (!broadcast) {
      const created = new Broadcast(hub, framing, () => {
        if (this.#shared.get(key) === created) this.#shared.delete(key);
      });
      this.#shared.set(key, created);
      created.start(pattern, undefined, options.progressInterval);
      broadcast = created;
    }
    broadcast.connections.add(connection);
    const joined = broadcast;
    return () => joined.leave(connection);
  }
}

const framingIds = new WeakMap<Framing, number>();
let nextFramingId = 0;
function shareKey(framing: Framing): number {
  let id = framingIds.get(framing);
  if (id === undefined) {
    id = nextFramingId++;
    framingIds.set(framing, id);
  }
  return id;
}
