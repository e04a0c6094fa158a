/**
 * A focused micro-benchmark of the key codec's hot paths (encode, decode, compare, keyId), the
 * calls every read and write makes. Quicker than `npm run bench` when only the codec changed.
 *
 *   npx tsx bench/key-codec.ts
 */
import { compareBytes, decodeKey, encodeKey, type KvKey, keyId } from "../src/codec/key.js";

const KEYS: KvKey[] = Array.from({ length: 1000 }, (_, i) => [
  "users",
  `user-${i}@example.com`,
  BigInt(i) * 1_000_003n,
  i / 7,
  i % 2 === 0,
]);
const SHORT: KvKey[] = Array.from({ length: 1000 }, (_, i) => ["users", i]);

function measure(name: string, run: () => void, ops: number): void {
  for (let i = 0; i < 20; i++) run();
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 7; round++) {
    const start = performance.now();
    for (let i = 0; i < 20; i++) run();
    best = Math.min(best, (performance.now() - start) / (20 * ops));
  }
  console.log(`${name.padEnd(28)} ${(best * 1e6).toFixed(0).padStart(6)} ns/op`);
}

const encodedLong = KEYS.map((k) => encodeKey(k));
const encodedShort = SHORT.map((k) => encodeKey(k));
let sink = 0;

measure(
  "encodeKey [users, i]",
  () => {
    for (const key of SHORT) sink += encodeKey(key).length;
  },
  SHORT.length,
);
measure(
  "encodeKey 5 parts",
  () => {
    for (const key of KEYS) sink += encodeKey(key).length;
  },
  KEYS.length,
);
measure(
  "decodeKey [users, i]",
  () => {
    for (const bytes of encodedShort) sink += decodeKey(bytes).length;
  },
  encodedShort.length,
);
measure(
  "decodeKey 5 parts",
  () => {
    for (const bytes of encodedLong) sink += decodeKey(bytes).length;
  },
  encodedLong.length,
);
measure(
  "compareBytes",
  () => {
    for (let i = 1; i < encodedLong.length; i++)
      sink += compareBytes(encodedLong[i - 1]!, encodedLong[i]!);
  },
  encodedLong.length - 1,
);
measure(
  "keyId 5 parts",
  () => {
    for (const bytes of encodedLong) sink += keyId(bytes).length;
  },
  encodedLong.length,
);
if (sink === 42) console.log(sink);
