import { Redis } from "ioredis";

/** The Redis the peers of the server and queue benchmarks run on (REDIS_HOST, REDIS_PORT). */
export const REDIS = {
  host: process.env.REDIS_HOST ?? "127.0.0.1",
  port: Number(process.env.REDIS_PORT ?? 6379),
} as const;

export const REDIS_SKIPPED = `skipped: redis not reachable on ${REDIS.host}:${REDIS.port}`;

/** A connected client, or null when no Redis answers. */
export async function connectRedis(): Promise<Redis | null> {
  const redis = new Redis({
    ...REDIS,
    lazyConnect: true,
    connectTimeout: 1000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // Without a listener ioredis prints every connection error; a failed ping says enough.
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch {
    redis.disconnect();
    return null;
  }
}

/** Deletes every key matching `pattern` (a SCAN glob); resolves to how many there were. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    if (keys.length > 0) deleted += await redis.del(...keys);
    cursor = next;
  } while (cursor !== "0");
  return deleted;
}
