/**
 * What the two directions of one mirror share: the database view, the checked options, the
 * connection pool and the setup it needs before the first statement (re-run after PostgreSQL was
 * lost), the status board, and a sleep that ends when the mirror closes.
 */
import type pg from "pg";
import type { Kv } from "../core/kv.js";
import { coreOf } from "../core/surface.js";
import { loadPg, openPool, type Pg } from "./connection.js";
import { Layout } from "./layout.js";
import type { MirrorConfig } from "./options.js";
import { type MirrorState, setUp } from "./setup.js";
import type { StatusBoard } from "./status.js";

export class Runtime {
  closed = false;
  #driver: Pg | null = null;
  #pool: pg.Pool | null = null;
  #layout: Layout | null = null;
  #ready: Promise<MirrorState> | null = null;
  readonly #sleepers = new Set<() => void>();

  constructor(
    readonly kv: Kv,
    readonly config: MirrorConfig,
    readonly status: StatusBoard,
  ) {}

  /** Whether the database closed under the mirror: nothing more can flow either way. */
  get databaseClosed(): boolean {
    return coreOf(this.kv).core.closed;
  }

  get driver(): Pg {
    return this.#driver!;
  }

  get pool(): pg.Pool {
    return this.#pool!;
  }

  get layout(): Layout {
    return this.#layout!;
  }

  /** Loads node-postgres and sets up the schema once; again after {@link invalidate}. */
  ready(): Promise<MirrorState> {
    this.#ready ??= this.#setUp().catch((error) => {
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }

  async #setUp(): Promise<MirrorState> {
    if (!this.#driver) {
      this.#driver = await loadPg();
      this.#layout = new Layout(this.config, this.#driver.escapeIdentifier);
      this.#pool = openPool(this.#driver, this.config.connectionString);
    }
    const client = await this.pool.connect();
    try {
      const state = await setUp(client, this.config, this.layout, this.kv.namespaceName);
      this.status.set("connected", true);
      return state;
    } finally {
      client.release();
    }
  }

  /** The next {@link ready} sets up again: the table or the server may have changed meanwhile. */
  invalidate(): void {
    this.#ready = null;
  }

  /** Waits `ms`, or less if the mirror closes meanwhile. */
  sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }

  /** Marks the mirror closed and ends every sleep. */
  close(): void {
    this.closed = true;
    for (const wake of [...this.#sleepers]) wake();
  }

  /** Ends the pool once the directions have stopped. */
  async end(): Promise<void> {
    await this.#pool?.end().catch(() => undefined);
  }
}
