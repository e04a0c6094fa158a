/**
 * Indexes across a network: a driver that is a client of another Cellar (the remote driver) does
 * not maintain indexes or search indexes itself — its server does, in its own commits — so it
 * hands every index call to the server instead. Calls and answers are JSON: keys in the wire
 * protocol's JSON key form, where filters in the where language.
 */

/** One call on the indexes of a namespace; `args` as the `Kv` method of the same name takes them. */
export interface IndexCall {
  readonly op:
    | "createIndex"
    | "dropIndex"
    | "listIndexes"
    | "createSearchIndex"
    | "dropSearchIndex"
    | "listSearchIndexes"
    | "search"
    | "explain"
    | "walk";
  readonly args: Readonly<Record<string, unknown>>;
}

export interface KvIndexHost {
  /** Runs `call` on the server's namespace `namespace`; resolves to its JSON answer. */
  indexCall(namespace: string, call: IndexCall): Promise<unknown>;
}
