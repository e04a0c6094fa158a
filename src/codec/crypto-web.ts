/**
 * The part of `node:crypto` the drivers use, for runtimes without it: package.json's `#crypto`
 * import picks this file outside Node. SHA-256 must be synchronous (the memory driver hashes
 * inside its synchronous commit), which Web Crypto's `digest` is not, hence `@noble/hashes`.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "./bytes.js";

/**
 * `node:crypto`'s one-shot `hash`, for SHA-256 to hex only.
 *
 * @example
 * hash("sha256", new Uint8Array(), "hex"); // "e3b0c442…b855"
 */
export function hash(algorithm: string, data: Uint8Array, outputEncoding = "hex"): string {
  if (algorithm !== "sha256" || outputEncoding !== "hex")
    throw new Error(`only sha256 to hex is available here, not ${algorithm} to ${outputEncoding}`);
  return toHex(sha256(data));
}
