/**
 * Keys in the UI: the API's JSON form (`{"$bigint": "42"}`…) to and from the real parts, the
 * key-path form the URLs use (`users/~n:42`), and how a part is shown so that the string `"42"`,
 * the number `42`, the bigint `42n` and the bytes `0x2a` never look alike.
 */
import { toBase64Url, toHex } from "../codec/bytes.js";
import { encodeKey, type KvKeyPart } from "../codec/key.js";
import { keyFromJson, keyFromPath, keyToJson, keyToPath } from "../wire/json.js";
import type { JsonKey, JsonPart } from "./api.js";

export type PartKind = "string" | "number" | "bigint" | "bytes" | "boolean";

export const toParts = (key: JsonKey): KvKeyPart[] => keyFromJson(key);
export const toJsonKey = (parts: readonly KvKeyPart[]): JsonKey => keyToJson(parts) as JsonKey;

export function kindOf(part: KvKeyPart): PartKind {
  if (part instanceof Uint8Array) return "bytes";
  return typeof part as PartKind;
}

/** A part as the UI shows it: strings quoted, bigints with `n`, bytes as hex. */
export function partLabel(part: KvKeyPart): string {
  if (typeof part === "string") return JSON.stringify(part);
  if (typeof part === "number") return Object.is(part, -0) ? "-0" : String(part);
  if (typeof part === "bigint") return `${part}n`;
  if (typeof part === "boolean") return String(part);
  return `0x${toHex(part)}`;
}

/** The key path of the HTTP API, with `.` and `..` escaped so a URL never resolves them. */
export function pathOf(parts: readonly KvKeyPart[]): string {
  return keyToPath(parts)
    .split("/")
    .map((segment) => (segment === "." || segment === ".." ? `~s:${segment}` : segment))
    .join("/");
}

/** Parses a key path a user typed or a URL holds; throws the API's `INVALID_KEY` message. */
export function partsOf(path: string): KvKeyPart[] {
  return keyFromPath(path.replace(/^\/+|\/+$/g, ""));
}

export const jsonPathOf = (key: JsonKey): string => pathOf(toParts(key));

/** Whether two JSON keys name the same key. */
export const sameKey = (a: JsonKey, b: JsonKey): boolean => jsonPathOf(a) === jsonPathOf(b);

/**
 * A list cursor that resumes past every key under `prefix + [child]`, so a tree lists a node's
 * distinct children with one read each, however many keys each holds. A cursor is the base64url
 * of the last key read less the selector's prefix (`src/core/list.ts`): after that key plus a
 * 0xff byte, which no key part starts with, comes the next child.
 */
export function skipChildCursor(child: KvKeyPart): string {
  const bytes = encodeKey([child]);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = 0xff;
  return toBase64Url(out);
}

export function partOfJson(part: JsonPart): KvKeyPart {
  return keyFromJson([part])[0]!;
}
