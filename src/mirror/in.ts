/**
 * The way in: changes made in the table by anyone but the mirror, applied to Cellar.
 *
 * The table's triggers (see `setup.ts`) append the key of every changed row to the inbox and
 * NOTIFY; this reads the inbox after its checkpoint (on a notification, and every
 * `pollInterval` ms in case one was missed while disconnected), reads the rows as they are now,
 * and commits what they hold: a row present is a `set` (with its `expires_at`), a row gone is a
 * `delete`, each written with `modifiedBy: "postgres:<schema>.<table>"`. They are ordinary
 * commits, so subscribers and watchers see them and the way out writes them back, harmlessly:
 * the mirror's sessions set `cellar.origin`, which the triggers skip.
 *
 * The checkpoint is kept twice: in Cellar, in the same commit as the changes it covers (under
 * the reserved namespace `$mirror`, checked, so two processes never apply one change twice),
 * and in PostgreSQL, where it also lets the inbox be emptied. A row that cannot be read (a
 * malformed key, a value that does not decode) is skipped, reported and left as it is.
 */
import type pg from "pg";
import type { Mutation } from "../contract/index.js";
import { coreOf, reservedView, WHOLE_DATABASE } from "../core/surface.js";
import { bareMessage, isOutage, KvError } from "../errors.js";
import { asKvError, backoff, connectionConfig, isConnectionError } from "./connection.js";
import type { Runtime } from "./runtime.js";
import { CHANNEL } from "./setup.js";
import { kvErrorOf } from "./status.js";

/** The reserved namespace holding each mirror's checkpoint of the way in. */
const MIRROR_NAMESPACE = "$mirror";

interface InboxRow {
  readonly id: number;
  readonly key: string;
}

export class InDirection {
  /** The last inbox id applied to Cellar. */
  applied = 0;
  /** The last inbox id whose changes are applied or being committed: the way out leaves later ones. */
  applying = 0;
  #mirrorId = "";
  /** The versionstamp of Cellar's checkpoint entry, for the check that keeps it single-writer. */
  #stamp: string | null = null;
  #listener: pg.Client | null = null;
  #wake: (() => void) | null = null;
  #waiters: { target: number; resolve: () => void }[] = [];
  readonly #modifiedBy: string;

  constructor(private readonly runtime: Runtime) {
    this.#modifiedBy = `postgres:${runtime.config.schema}.${runtime.config.table}`;
  }

  wake(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Runs until the mirror closes, retrying with backoff after each failure. */
  async run(): Promise<void> {
    const { runtime } = this;
    let attempt = 0;
    while (!runtime.closed) {
      try {
        const state = await runtime.ready();
        this.#mirrorId = state.id;
        await this.#listen();
        await this.#restore(state.inId);
        runtime.status.recovered();
        attempt = 0;
        while (!runtime.closed) {
          const rows = await this.#read();
          if (rows.length > 0) await this.#apply(rows);
          else {
            this.#settle();
            await this.#idle();
          }
        }
      } catch (error) {
        if (runtime.closed || runtime.databaseClosed) break;
        if (isConnectionError(error)) runtime.invalidate();
        runtime.status.failed(asKvError(error, "PostgreSQL"));
        runtime.status.set("state", "retrying");
        await this.#unlisten();
        await runtime.sleep(backoff(attempt++, runtime.config.retry));
      }
    }
    await this.#unlisten();
  }

  /**
   * Resolves once every change in the inbox now is applied to Cellar. Reading the inbox is
   * retried while PostgreSQL fails, until `deadline` (epoch ms).
   */
  async until(deadline: number): Promise<void> {
    const { runtime } = this;
    let target = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await runtime.ready();
        const { rows } = await runtime.pool.query(
          `SELECT coalesce(max(id), 0)::text AS id FROM ${runtime.layout.inbox} WHERE source = $1`,
          [runtime.config.table],
        );
        target = Number(rows[0]!.id);
        break;
      } catch (error) {
        if (runtime.closed || Date.now() > deadline) throw asKvError(error, "PostgreSQL");
        await runtime.sleep(backoff(attempt, runtime.config.retry));
      }
    }
    if (this.applied >= target) return;
    await new Promise<void>((resolve) => {
      this.#waiters.push({ target, resolve });
      this.wake();
    });
  }

  #settle(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.applied < waiter.target) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Waits for a notification, the poll interval, or the mirror closing. */
  async #idle(): Promise<void> {
    const { runtime } = this;
    if (runtime.closed) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      timer = setTimeout(() => this.wake(), runtime.config.pollInterval);
    });
    clearTimeout(timer);
    if (this.#listener === null && !runtime.closed)
      throw new KvError("UNAVAILABLE", "the connection listening for changes was lost");
  }

  /** A connection of its own that LISTENs; losing it sends the loop back to reconnect. */
  async #listen(): Promise<void> {
    if (this.#listener) return;
    const { runtime } = this;
    const client = new runtime.driver.Client(connectionConfig(runtime.config.connectionString));
    const lost = () => {
      if (this.#listener === client) this.#listener = null;
      this.wake();
    };
    client.on("error", lost);
    client.on("end", lost);
    const source = `${runtime.config.schema}.${runtime.config.table}`;
    client.on("notification", (message) => {
      if (message.payload === source) this.wake();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${runtime.layout.quote(CHANNEL)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.#listener = client;
  }

  async #unlisten(): Promise<void> {
    const client = this.#listener;
    this.#listener = null;
    await client?.end().catch(() => undefined);
  }

  /** Where to go on from: the later of the checkpoints kept in PostgreSQL and in Cellar. */
  async #restore(stored: number): Promise<void> {
    const entry = await reservedView(this.runtime.kv, MIRROR_NAMESPACE).get<{ inbox: number }>([
      "in",
      this.#mirrorId,
    ]);
    this.#stamp = entry.versionstamp;
    const kept = typeof entry.value?.inbox === "number" ? entry.value.inbox : 0;
    this.applied = Math.max(stored, kept);
    this.applying = this.applied;
    this.runtime.status.set("inbox", this.applied);
  }

  async #read(): Promise<InboxRow[]> {
    const { runtime } = this;
    const { rows } = await runtime.pool.query(
      `SELECT id::text AS inbox_id, key FROM ${runtime.layout.inbox} WHERE source = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [runtime.config.table, this.applied, this.#chunk()],
    );
    return rows.map((row) => ({ id: Number(row.inbox_id), key: row.key as string }));
  }

  /** Changes per Cellar commit: the batch size, within the database's mutation limit. */
  #chunk(): number {
    const { core } = coreOf(this.runtime.kv);
    return Math.max(1, Math.min(this.runtime.config.batchSize, core.limits.maxMutations - 1));
  }

  /** Applies one batch of the inbox to Cellar, then moves the checkpoint in PostgreSQL. */
  async #apply(inbox: readonly InboxRow[]): Promise<void> {
    const { runtime } = this;
    const { layout, config } = runtime;
    const last = inbox[inbox.length - 1]!.id;
    const keys = [...new Set(inbox.map((row) => row.key))];
    const { rows } = await runtime.pool.query(
      `SELECT ${layout.readColumns()} FROM ${layout.table} WHERE key = ANY($1::text[])`,
      [keys],
    );
    const current = new Map(rows.map((row) => [row.key as string, row as Record<string, unknown>]));
    const mutations: Mutation[] = [];
    for (const key of keys) {
      const mutation = this.#mutationOf(key, current.get(key));
      if (mutation) mutations.push(mutation);
    }
    this.applying = last;
    let applied: number | null;
    try {
      applied = await this.#commit(mutations, last);
    } catch (error) {
      this.applying = this.applied;
      throw error;
    }
    // Another process applied these first; go on from its checkpoint.
    if (applied === null) return;
    await runtime.pool.query(
      `WITH cp AS (UPDATE ${layout.state} SET in_id = $2, updated_at = now() WHERE table_name = $1 AND in_id < $2)
       DELETE FROM ${layout.inbox} WHERE source = $1 AND id <= $2`,
      [config.table, last],
    );
    this.applied = last;
    runtime.status.set("inbox", last);
    runtime.status.applied(applied);
    runtime.status.set("connected", true);
    config.onWrite?.({ direction: "in", rows: applied, checkpoint: String(last) });
    this.#settle();
  }

  /** The mutation the row now under `key` (or its absence) calls for; `null` when it is skipped. */
  #mutationOf(key: string, row: Record<string, unknown> | undefined): Mutation | null {
    const { runtime } = this;
    const change = runtime.layout.incoming(key, row);
    if (!change.ok) {
      runtime.status.skip(change.reason);
      return null;
    }
    try {
      const { core, keyspace } = coreOf(runtime.kv);
      const stored = keyspace.encode(change.key);
      const info = { modifiedBy: this.#modifiedBy };
      if ("deleted" in change || (change.expiresAt !== null && change.expiresAt <= core.now()))
        return { type: "delete", key: stored, info };
      return {
        type: "set",
        key: stored,
        value: core.encodeValue(change.value),
        expiresAt: change.expiresAt,
        info,
      };
    } catch (error) {
      runtime.status.skip(
        `key ${JSON.stringify(key)}: ${kvErrorOf(error, "INVALID_VALUE").message}`,
      );
      return null;
    }
  }

  /**
   * Commits `mutations` with the checkpoint `last`, checked against the checkpoint entry read
   * before. When the database refuses the commit for one change's sake (a value over its limit),
   * commits them one by one and skips those it refuses. Resolves to the changes applied, or
   * `null` when another process moved the checkpoint first.
   */
  async #commit(mutations: readonly Mutation[], last: number): Promise<number | null> {
    try {
      return (await this.#commitWith(mutations, last)) ? mutations.length : null;
    } catch (error) {
      if (!(error instanceof KvError) || error.code === "DATABASE_CLOSED" || isOutage(error))
        throw error;
      let applied = 0;
      if (mutations.length <= 1) this.runtime.status.skip(bareMessage(error));
      else {
        for (const mutation of mutations) {
          const one = await this.#commit([mutation], this.applied);
          if (one === null) return null;
          applied += one;
        }
      }
      return (await this.#commitWith([], last)) ? applied : null;
    }
  }

  /** One commit; `false` when another process moved the checkpoint first (then it is re-read). */
  async #commitWith(mutations: readonly Mutation[], last: number): Promise<boolean> {
    const { kv } = this.runtime;
    const { core } = coreOf(kv);
    const { keyspace } = coreOf(reservedView(kv, MIRROR_NAMESPACE));
    const checkpoint = keyspace.encode(["in", this.#mirrorId]);
    const result = await core.commit(
      {
        checks: [{ key: checkpoint, versionstamp: this.#stamp }],
        mutations: [
          ...mutations,
          {
            type: "set",
            key: checkpoint,
            value: core.encodeValue({ inbox: last }),
            expiresAt: null,
          },
        ],
      },
      WHOLE_DATABASE,
    );
    if (result) {
      this.#stamp = result.versionstamp;
      return true;
    }
    await this.#restore(this.applied);
    return false;
  }
}
