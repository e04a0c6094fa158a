/**
 * Key patterns, with MQTT's wildcard semantics over key parts: {@link ANY} matches exactly one
 * part of any type, {@link REST} (last only) matches zero or more parts, so `["users", REST]`
 * matches `["users"]` and everything under it. Literal parts compare as stored (encoded) bytes,
 * so they match exactly what the same part in a key would: `1` and `1n` are different parts.
 */
import { encodeKey, type KvKeyPart, keyId, partEnds } from "../../codec/key.js";
import { describe, fail } from "../../errors.js";

/** A pattern part matching exactly one key part, of any type (MQTT's `+`). */
export const ANY: unique symbol = Symbol.for("cellar.pattern.any");
/** A last pattern part matching zero or more key parts (MQTT's `#`). */
export const REST: unique symbol = Symbol.for("cellar.pattern.rest");

export type KvPatternPart = KvKeyPart | typeof ANY | typeof REST;
/** A key whose parts may be {@link ANY}, and whose last part may be {@link REST}. */
export type KvPattern = readonly KvPatternPart[];

/** A pattern in stored form: each part's id (`keyId` of its encoded bytes), or ANY. */
export interface CompiledPattern {
  readonly parts: readonly (string | typeof ANY)[];
  /** Ends with REST: keys with more parts than `parts` match too. */
  readonly rest: boolean;
}

/**
 * Checks `pattern` and compiles it behind the namespace prefix `prefix` (the stored key's first
 * part). Throws `INVALID_PATTERN` naming the offending part.
 */
export function compilePattern(pattern: unknown, prefix: Uint8Array): CompiledPattern {
  if (!Array.isArray(pattern))
    fail("INVALID_PATTERN", `a pattern is an array of key parts, got ${describe(pattern)}`);
  if (pattern.length === 0)
    fail("INVALID_PATTERN", "a pattern needs at least one part; [REST] matches every key");
  const parts: (string | typeof ANY)[] = [keyId(prefix)];
  let rest = false;
  pattern.forEach((part: unknown, i) => {
    if (part === REST) {
      if (i !== pattern.length - 1)
        fail("INVALID_PATTERN", `REST may stand only last, found at part ${i}`);
      rest = true;
    } else if (part === ANY) {
      parts.push(ANY);
    } else {
      parts.push(literalId(part, i));
    }
  });
  return { parts, rest };
}

function literalId(part: unknown, index: number): string {
  const type = typeof part;
  const valid =
    type === "string" ||
    type === "bigint" ||
    type === "boolean" ||
    (type === "number" && !Number.isNaN(part)) ||
    part instanceof Uint8Array;
  if (!valid)
    fail(
      "INVALID_PATTERN",
      `part ${index} must be a key part (string, number, bigint, boolean or Uint8Array), ANY or REST, got ${describe(part)}`,
    );
  return keyId(encodeKey([part as KvKeyPart]));
}

/** The id of each part of the stored key `key`, as {@link CompiledPattern} lists literals. */
export function partIds(key: Uint8Array): string[] {
  const ids: string[] = [];
  let start = 0;
  for (const end of partEnds(key)) {
    ids.push(keyId(key.subarray(start, end)));
    start = end;
  }
  return ids;
}

/** Whether the stored key whose part ids are `ids` matches `pattern`. */
export function matches(pattern: CompiledPattern, ids: readonly string[]): boolean {
  const { parts, rest } = pattern;
  if (ids.length < parts.length || (!rest && ids.length !== parts.length)) return false;
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] !== ANY && parts[i] !== ids[i]) return false;
  }
  return true;
}

/**
 * Subscribers by pattern, in a trie over pattern parts, so finding every subscriber a key
 * matches costs one walk of the key's parts (branching only at ANY), however many patterns
 * there are.
 */
export class PatternIndex<T> {
  readonly #root = new TrieNode<T>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(pattern: CompiledPattern, value: T): void {
    let node = this.#root;
    for (const part of pattern.parts) {
      if (part === ANY) node = node.any ??= new TrieNode<T>();
      else {
        let child = node.children.get(part);
        if (!child) {
          child = new TrieNode<T>();
          node.children.set(part, child);
        }
        node = child;
      }
    }
    (pattern.rest ? node.rest : node.exact).add(value);
    this.#size++;
  }

  delete(pattern: CompiledPattern, value: T): void {
    const path: TrieNode<T>[] = [this.#root];
    let node: TrieNode<T> | undefined = this.#root;
    for (const part of pattern.parts) {
      node = part === ANY ? node.any : node.children.get(part);
      if (!node) return;
      path.push(node);
    }
    if (!(pattern.rest ? node.rest : node.exact).delete(value)) return;
    this.#size--;
    // Prune the nodes left empty, so memory returns to its idle level as subscribers leave.
    for (let i = pattern.parts.length; i > 0; i--) {
      const child = path[i]!;
      if (!child.empty) break;
      const parent = path[i - 1]!;
      const part = pattern.parts[i - 1]!;
      if (part === ANY) parent.any = undefined;
      else parent.children.delete(part);
    }
  }

  /** Calls `visit` once for each value whose pattern matches the key with part ids `ids`. */
  match(ids: readonly string[], visit: (value: T) => void): void {
    this.#root.match(ids, 0, visit);
  }
}

class TrieNode<T> {
  readonly children = new Map<string, TrieNode<T>>();
  any: TrieNode<T> | undefined;
  /** Patterns ending here. */
  readonly exact = new Set<T>();
  /** Patterns ending here with REST. */
  readonly rest = new Set<T>();

  get empty(): boolean {
    return this.children.size === 0 && !this.any && this.exact.size === 0 && this.rest.size === 0;
  }

  match(ids: readonly string[], i: number, visit: (value: T) => void): void {
    for (const value of this.rest) visit(value);
    if (i === ids.length) {
      for (const value of this.exact) visit(value);
      return;
    }
    this.children.get(ids[i]!)?.match(ids, i + 1, visit);
    this.any?.match(ids, i + 1, visit);
  }
}
