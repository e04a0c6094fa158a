/**
 * Reads of one statement for the PostgreSQL driver. One connection is kept out of the pool for
 * them and used whenever no read is in flight on it: checking a connection out of the pool and
 * back in costs a point read about a tenth of its time. A read that finds it busy goes through
 * the pool, so concurrent reads still spread over the pool's connections. A pool of one
 * connection keeps none back, or a read would leave every other statement waiting for it.
 */
import pg from "pg";
import { connectionLost } from "./faults.js";

export class Reader {
  readonly #pool: pg.Pool;
  #client: pg.PoolClient | null = null;
  #onError: ((error: Error) => void) | null = null;
  #busy = false;
  #closed = false;

  readonly #holds: boolean;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.#holds = (pool.options.max ?? 10) >= 2;
  }

  async query(query: pg.QueryConfig): Promise<pg.QueryResult> {
    if (this.#busy || this.#closed || !this.#holds) return this.#pool.query(query);
    this.#busy = true;
    let client: pg.PoolClient | null = null;
    try {
      client = this.#client ?? (await this.#acquire());
      return await client.query(query);
    } catch (error) {
      // Anything but an error the server reported about the statement leaves the connection in doubt.
      if (client && (!(error instanceof pg.DatabaseError) || connectionLost(error))) {
        this.#drop(client, error as Error);
      }
      throw error;
    } finally {
      this.#busy = false;
      if (this.#closed && this.#client) this.#drop(this.#client);
    }
  }

  /** Gives the connection back to the pool, once its read (if any) is done. */
  close(): void {
    this.#closed = true;
    if (!this.#busy && this.#client) this.#drop(this.#client);
  }

  async #acquire(): Promise<pg.PoolClient> {
    const client = await this.#pool.connect();
    // A held connection that breaks while idle is dropped, instead of crashing the process.
    this.#onError = (error) => this.#drop(client, error);
    client.on("error", this.#onError);
    this.#client = client;
    return client;
  }

  /** Releases the held connection (destroyed if `error`); the pool watches it again from then. */
  #drop(client: pg.PoolClient, error?: Error): void {
    if (this.#client !== client) return;
    if (this.#onError) client.off("error", this.#onError);
    this.#client = null;
    this.#onError = null;
    client.release(error);
  }
}
