import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeKey, type KvKey, type KvKeyPart } from "../../codec/key.js";
import type { KvError } from "../../errors.js";
import {
  ANY,
  type CompiledPattern,
  compilePattern,
  type KvPattern,
  matches,
  PatternIndex,
  partIds,
  REST,
} from "./pattern.js";

const PREFIX = encodeKey(["ns"]);

/** MQTT's matching, written the obvious way over decoded parts. */
function reference(pattern: KvPattern, key: KvKey): boolean {
  if (pattern.length === 0) return key.length === 0;
  const [head, ...rest] = pattern;
  if (head === REST) return true;
  if (key.length === 0) return false;
  if (head !== ANY && !samePart(head as KvKeyPart, key[0]!)) return false;
  return reference(rest, key.slice(1));
}

function samePart(a: KvKeyPart, b: KvKeyPart): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return (
      a instanceof Uint8Array &&
      b instanceof Uint8Array &&
      a.length === b.length &&
      a.every((byte, i) => byte === b[i])
    );
  }
  return typeof a === typeof b && a === b;
}

// A small alphabet, so that keys and patterns meet often; parts that look alike across types
// (1, 1n, "1") must not match each other.
const part = fc.constantFrom<KvKeyPart>(
  "a",
  "b",
  "1",
  "",
  1,
  2.5,
  1n,
  -3n,
  true,
  false,
  new Uint8Array([1]),
  new Uint8Array([0, 255]),
);
const key = fc.array(part, { maxLength: 5 });
const pattern = fc
  .tuple(fc.array(fc.oneof(part, fc.constant(ANY)), { maxLength: 4 }), fc.boolean())
  .map(([parts, rest]): KvPattern => (rest ? [...parts, REST] : parts))
  .filter((p) => p.length > 0);

const storedIds = (k: KvKey) => partIds(encodeKey(k, PREFIX));

describe("patterns", () => {
  it("match exactly the keys the reference matcher does", () => {
    fc.assert(
      fc.property(pattern, key, (p, k) => {
        expect(matches(compilePattern(p, PREFIX), storedIds(k))).toBe(reference(p, k));
      }),
      { numRuns: 2000 },
    );
  });

  it("are found through the index exactly when they match, and leave nothing behind", () => {
    fc.assert(
      fc.property(fc.array(pattern, { minLength: 1, maxLength: 12 }), fc.array(key), (ps, ks) => {
        const index = new PatternIndex<number>();
        const compiled: CompiledPattern[] = ps.map((p) => compilePattern(p, PREFIX));
        compiled.forEach((c, i) => {
          index.add(c, i);
        });
        for (const k of ks) {
          const found: number[] = [];
          index.match(storedIds(k), (i) => found.push(i));
          const expected = ps.flatMap((p, i) => (reference(p, k) ? [i] : []));
          expect(found.sort((a, b) => a - b)).toEqual(expected);
        }
        compiled.forEach((c, i) => {
          index.delete(c, i);
        });
        expect(index.size).toBe(0);
        const left: number[] = [];
        for (const k of ks) index.match(storedIds(k), (i) => left.push(i));
        expect(left).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("never match another namespace's keys", () => {
    const p = compilePattern([REST], PREFIX);
    expect(matches(p, partIds(encodeKey(["a"], encodeKey(["other"]))))).toBe(false);
    expect(matches(p, partIds(encodeKey(["a"], PREFIX)))).toBe(true);
  });

  it("refuse malformed patterns, naming the part", () => {
    const refusal = (p: unknown) => {
      try {
        compilePattern(p, PREFIX);
      } catch (error) {
        expect((error as KvError).code).toBe("INVALID_PATTERN");
        return (error as KvError).message;
      }
      throw new Error("accepted");
    };
    expect(refusal([REST, "a"])).toMatch(/only last, found at part 0/);
    expect(refusal(["a", null])).toMatch(/part 1/);
    expect(refusal(["a", Symbol("x")])).toMatch(/part 1/);
    expect(refusal([])).toMatch(/at least one part/);
    expect(refusal({ 0: "a" })).toMatch(/array/);
  });
});
