/**
 * The gauges of the metrics layer, read when the registry is scraped rather than kept up to date
 * on every write: watch streams and subscriptions, queue messages by state, the latest commit,
 * and what the database holds. Their reads go through the store like any other (so they appear
 * in `cellar_operations_total` too). A gauge whose read fails (the database closing, a driver
 * without queues) reports nothing for that scrape rather than failing the whole scrape.
 */
import { Gauge, type Registry } from "prom-client";
import { decodeKey } from "../codec/key.js";
import { NEWEST_VERSIONSTAMP, parseVersionstamp } from "../codec/versionstamp.js";
import type { Kv } from "../core/kv.js";
import {
  coreOf,
  type KvCore,
  listNamespaces,
  namespaceOf,
  namespaceUsage,
  WHOLE_DATABASE,
  watchCounts,
} from "../core/surface.js";

export interface GaugeOptions {
  /** How long storage totals are reused; `null`: not reported. */
  readonly storageMaxAgeMs: number | null;
  readonly maxQueues: number;
}

/** Every stored key starts with its namespace's name, a string part: tag 0x02. */
const ALL_QUEUES = { start: Uint8Array.of(0x02), end: Uint8Array.of(0x03) };

/** Adds the scrape-time gauges of `kv`'s database to `registry`. */
export function registerGauges(kv: Kv, registry: Registry, options: GaugeOptions): void {
  const { core } = coreOf(kv);
  const registers = [registry];
  new Gauge({
    name: "cellar_watchers",
    help: "Open key-watch streams of this process",
    registers,
    collect() {
      if (!core.closed) this.set(watchCounts(kv).streams);
    },
  });
  new Gauge({
    name: "cellar_subscribers",
    help: "Subscriptions that wake on a change, by kind: key watchers, event subscriptions (patterns, prefix watches, server broadcasts), consumers waiting for a queue message",
    labelNames: ["kind"] as const,
    registers,
    collect() {
      if (core.closed) return;
      const counts = watchCounts(kv);
      this.set({ kind: "keys" }, counts.keys);
      this.set({ kind: "events" }, counts.events);
      this.set({ kind: "queues" }, counts.queues);
    },
  });
  new Gauge({
    name: "cellar_queue_messages",
    help: `Messages of each queue that holds any, by state (at most ${options.maxQueues} queues)`,
    labelNames: ["namespace", "queue", "state"] as const,
    registers,
    async collect() {
      this.reset();
      for (const { namespace, queue, stats } of await queueStats(core, options.maxQueues)) {
        this.set({ namespace, queue, state: "pending" }, stats.pending);
        this.set({ namespace, queue, state: "delayed" }, stats.delayed);
        this.set({ namespace, queue, state: "in_flight" }, stats.inFlight);
        this.set({ namespace, queue, state: "dead" }, stats.dead);
      }
    },
  });
  new Gauge({
    name: "cellar_change_log_head_versionstamp",
    help: "Commit version of the database's latest commit (the first 8 bytes of its versionstamp)",
    registers,
    async collect() {
      const head = await orNull(core, () => core.changes(NEWEST_VERSIONSTAMP, 0));
      if (head) this.set(parseVersionstamp(head.head));
    },
  });
  if (options.storageMaxAgeMs !== null) registerStorage(core, registers, options.storageMaxAgeMs);
}

/** `cellar_entries` and `cellar_stored_bytes`, from one reading reused for `maxAgeMs`. */
function registerStorage(core: KvCore, registers: Registry[], maxAgeMs: number): void {
  let reading: Promise<{ entries: number; bytes: number } | null> | null = null;
  let readAt = 0;
  const totals = () => {
    if (!reading || Date.now() - readAt > maxAgeMs) {
      readAt = Date.now();
      reading = orNull(core, () => storageTotals(core));
    }
    return reading;
  };
  new Gauge({
    name: "cellar_entries",
    help: `Live entries in every namespace (read at most every ${maxAgeMs / 1000} s)`,
    registers,
    async collect() {
      const found = await totals();
      if (found) this.set(found.entries);
    },
  });
  new Gauge({
    name: "cellar_stored_bytes",
    help: `Encoded keys and values of live entries, without metadata, history or storage overhead (read at most every ${maxAgeMs / 1000} s)`,
    registers,
    async collect() {
      const found = await totals();
      if (found) this.set(found.bytes);
    },
  });
}

async function storageTotals(core: KvCore): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  for (const name of await listNamespaces(core, { limit: Number.MAX_SAFE_INTEGER })) {
    const usage = await namespaceUsage(core, name);
    entries += usage.entries;
    bytes += usage.bytes;
  }
  return { entries, bytes };
}

interface QueueState {
  readonly namespace: string;
  readonly queue: string;
  readonly stats: { pending: number; delayed: number; inFlight: number; dead: number };
}

async function queueStats(core: KvCore, max: number): Promise<QueueState[]> {
  const ids = await orNull(core, () => core.listQueues(ALL_QUEUES, WHOLE_DATABASE, max));
  const found: QueueState[] = [];
  for (const id of ids ?? []) {
    const stats = await orNull(core, () => core.queue(id, WHOLE_DATABASE).stats());
    if (!stats) continue;
    const { name, prefixLength } = namespaceOf(id);
    found.push({ namespace: name, queue: String(decodeKey(id.subarray(prefixLength))[0]), stats });
  }
  return found;
}

/** `read()`, or `null` when the database is closed or the read fails: the scrape goes on. */
async function orNull<T>(core: KvCore, read: () => Promise<T>): Promise<T | null> {
  if (core.closed) return null;
  try {
    return await read();
  } catch {
    return null;
  }
}
