import { KvError } from "../errors.js";

/** Open streams, so shutdown can end them and limits can count them. */
export class StreamRegistry {
  readonly #open = new Set<() => void>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.#open.size;
  }

  add(end: () => void): () => void {
    if (this.#open.size >= this.max) {
      throw new KvError(
        "LIMIT_EXCEEDED",
        `the server holds its maximum of ${this.max} open streams (watches, waiting polls and queue listens)`,
      );
    }
    this.#open.add(end);
    return () => this.#open.delete(end);
  }

  endAll(): void {
    for (const end of this.#open) end();
    this.#open.clear();
  }
}
