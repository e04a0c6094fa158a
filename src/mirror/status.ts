/**
 * What a mirror reports about itself: its position and lag, what it wrote, and what went wrong,
 * read by `mirror.status()` and by the metrics layer (`cellar/observe`) at scrape time. Problems
 * also go to the mirror's logger, or else become process warnings.
 */
import { parseVersionstamp } from "../codec/versionstamp.js";
import { warn } from "../core/warn.js";
import { bareMessage, KvError, type KvErrorCode } from "../errors.js";
import type { MirrorDirection, MirrorLogger } from "./options.js";

/** Why the table was copied whole. */
export type ResyncReason =
  | "first start"
  | "prefix changed"
  | "table created"
  | "COMPACTED"
  | "database behind checkpoint";

export interface MirrorStatus {
  /** `schema.table`. */
  readonly table: string;
  readonly direction: MirrorDirection;
  /**
   * `starting` (connecting, setting up), `resyncing` (copying the prefix whole), `running`,
   * `retrying` (PostgreSQL failed; waiting to try again), `closed`.
   */
  readonly state: "starting" | "resyncing" | "running" | "retrying" | "closed";
  /** Whether the last statement sent to PostgreSQL succeeded. */
  readonly connected: boolean;
  /** Every change under the prefix up to this versionstamp is in the table. */
  readonly checkpoint: string | null;
  /** The database's latest commit, as far as the mirror knows. */
  readonly head: string | null;
  readonly lag: {
    /** Commits (of the whole database) between the checkpoint and the head. */
    readonly versionstamps: number;
    /** Age of the oldest change received and not yet in the table; 0 when caught up. */
    readonly ms: number;
  };
  /** The way in: the last inbox id applied to Cellar (0 before any, and for `"out"`). */
  readonly inbox: number;
  /** Rows upserted or deleted in the table. */
  readonly rowsWritten: number;
  /** Changes made in the table and applied to Cellar. */
  readonly changesApplied: number;
  /** Entries and rows skipped: a payload cell that could not be formed counts too. */
  readonly skipped: number;
  readonly resyncs: number;
  readonly lastResync: { readonly at: number; readonly reason: ResyncReason } | null;
  /** Failures so far: outages, refused statements, skipped rows. */
  readonly errors: number;
  readonly lastError: {
    readonly at: number;
    readonly code: KvErrorCode;
    readonly message: string;
  } | null;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A mirror's status, kept up to date by its directions. */
export class StatusBoard {
  readonly #status: Mutable<MirrorStatus>;
  /** When the oldest change not yet written arrived (ms), or null when caught up. */
  oldestPendingAt: number | null = null;

  constructor(
    table: string,
    direction: MirrorDirection,
    private readonly logger: MirrorLogger | undefined,
  ) {
    this.#status = {
      table,
      direction,
      state: "starting",
      connected: false,
      checkpoint: null,
      head: null,
      lag: { versionstamps: 0, ms: 0 },
      inbox: 0,
      rowsWritten: 0,
      changesApplied: 0,
      skipped: 0,
      resyncs: 0,
      lastResync: null,
      errors: 0,
      lastError: null,
    };
  }

  /** A copy of the status now. */
  read(): MirrorStatus {
    const status = this.#status;
    const { checkpoint, head } = status;
    const versionstamps =
      checkpoint && head && head > checkpoint
        ? parseVersionstamp(head) - parseVersionstamp(checkpoint)
        : 0;
    const ms = this.oldestPendingAt === null ? 0 : Math.max(0, Date.now() - this.oldestPendingAt);
    return { ...status, lag: { versionstamps, ms } };
  }

  set<K extends "state" | "connected" | "checkpoint" | "inbox">(
    field: K,
    value: MirrorStatus[K],
  ): void {
    if (this.#status.state === "closed" && field === "state") return;
    this.#status[field] = value;
  }

  /** A direction works again after a failure. */
  recovered(): void {
    if (this.#status.state === "retrying") this.#status.state = "running";
  }

  /** The database has reached `versionstamp`. */
  seen(versionstamp: string): void {
    const head = this.#status.head;
    if (head === null || versionstamp > head) this.#status.head = versionstamp;
  }

  wrote(rows: number): void {
    this.#status.rowsWritten += rows;
    this.#status.connected = true;
  }

  applied(changes: number): void {
    this.#status.changesApplied += changes;
  }

  resynced(reason: ResyncReason, rows: number): void {
    this.#status.resyncs += 1;
    this.#status.lastResync = { at: Date.now(), reason };
    this.info({ reason, rows }, `mirror ${this.#status.table}: resynchronised (${reason})`);
  }

  info(fields: object, message: string): void {
    this.logger?.info(fields, message);
  }

  /** An entry or row left out; the mirror goes on. */
  skip(reason: string): void {
    this.#status.skipped += 1;
    this.#record("INVALID_VALUE", reason, "warn", "skipped");
  }

  /** A failure the mirror retries. */
  failed(error: KvError): void {
    this.#status.connected = error.code !== "UNAVAILABLE" && this.#status.connected;
    this.#record(error.code, bareMessage(error), "error", "failed");
  }

  #record(code: KvErrorCode, message: string, level: "warn" | "error", what: string): void {
    const status = this.#status;
    status.errors += 1;
    status.lastError = { at: Date.now(), code, message };
    const line = `mirror ${status.table}: ${what}: ${message}`;
    if (this.logger) this.logger[level]({ code, table: status.table }, line);
    else if (status.errors <= 100 || status.errors % 1000 === 0) warn(`cellar: ${line}`);
  }
}

/** Turns anything thrown into a `KvError` for the status. */
export function kvErrorOf(error: unknown, code: KvErrorCode = "STORAGE_ERROR"): KvError {
  return error instanceof KvError
    ? error
    : new KvError(code, (error as Error)?.message ?? String(error), { cause: error });
}
