/**
 * Request and response shapes of the HTTP API, as zod schemas: they validate requests and
 * generate the OpenAPI document, so the two cannot drift apart.
 */
import { z } from "@hono/zod-openapi";
import type { KvKey } from "../codec/key.js";
import type { KvEntryMaybe } from "../core/types.js";
import { keyToJson, valueToJson } from "../wire/json.js";

export const KeyPart = z
  .union(
    [
      z.string(),
      z.number(),
      z.boolean(),
      z.object({ $bigint: z.string() }).strict(),
      z.object({ $bytes: z.string() }).strict(),
      z.object({ $number: z.enum(["NaN", "Infinity", "-Infinity", "-0"]) }).strict(),
    ],
    {
      error:
        'a key part is a string, number, boolean, {"$bigint": "<decimal>"}, {"$bytes": "<base64url>"} or {"$number": "NaN" | "Infinity" | "-Infinity" | "-0"}',
    },
  )
  .openapi("KeyPart", {
    description:
      "A key part: string, number, boolean, or a tagged bigint, bytes or special number.",
  });

export const Key = z
  .array(KeyPart, { error: "a key is a JSON array of parts" })
  .openapi("Key", { example: ["users", { $bigint: "42" }] });

export const Value = z.unknown().openapi("Value", {
  description:
    'Plain JSON as itself; other values as one-key tagged objects: $bigint, $number, $undefined, $date, $bytes, $typed, $map, $set, $regexp, $error, $u64, $object, $v8 (see README "Values over HTTP").',
  example: { name: "Ada", since: { $date: "2024-01-01T00:00:00.000Z" } },
});

export const Versionstamp = z
  .string()
  .regex(/^[0-9a-f]{20}$/)
  .openapi("Versionstamp", { example: "00000000000000010000" });

export const Metadata = z
  .object({
    version: z.number().int(),
    createdAt: z.number(),
    updatedAt: z.number(),
    expiresAt: z.number().nullable(),
    tags: z.array(z.string()),
    modifiedBy: z.string().nullable(),
    comment: z.string().nullable(),
    dataHash: z.string(),
  })
  .openapi("Metadata");

export const Entry = z
  .object({
    key: Key,
    value: Value,
    versionstamp: Versionstamp.nullable(),
    metadata: Metadata.optional(),
  })
  .openapi("Entry");

/** An entry of a keys-only listing: no value. */
export const KeyOnlyEntry = z
  .object({ key: Key, versionstamp: Versionstamp })
  .openapi("KeyOnlyEntry");

export const ErrorBody = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .openapi("Error", {
    example: { error: { code: "INVALID_KEY", message: "key part 1 is an object" } },
  });

export const WriteInfo = {
  tags: z.array(z.string().max(256)).max(64).optional(),
  modifiedBy: z.string().max(256).optional(),
  comment: z.string().max(4096).optional(),
};

export const SetBody = z
  .strictObject({ value: Value, expireIn: z.number().int().positive().optional(), ...WriteInfo })
  .openapi("SetBody", { example: { value: { name: "Ada" }, expireIn: 60000, tags: ["admin"] } });

export const CommitOk = z
  .object({
    ok: z.literal(true),
    versionstamp: Versionstamp,
    uuids: z.array(z.string()).optional(),
  })
  .openapi("CommitResult");

export const Selector = {
  prefix: Key.optional(),
  start: Key.optional(),
  end: Key.optional(),
};

/** A where filter in JSON: the language of `kv.list(…, { where })`, checked when compiled. */
export const Where = z.record(z.string(), z.unknown()).openapi("Where", {
  description:
    'Only entries whose value matches: field paths (dots, digits index arrays) mapped to a value or to operators $eq $ne $gt $gte $lt $lte $between $in $nin $exists $contains $startsWith $endsWith $ieq $icontains $istartsWith $iendsWith; $and $or $not; operands {"$now": offsetMs}, {"$date": iso}, {"$bigint": "…"}',
  example: { age: { $gte: 18 }, "address.city": { $in: ["Paris", "Lyon"] } },
});

export const ListBody = z
  .strictObject({
    ...Selector,
    limit: z.number().int().positive().optional(),
    cursor: z.string().optional(),
    reverse: z.boolean().optional(),
    metadata: z.boolean().optional(),
    keysOnly: z
      .boolean()
      .optional()
      .openapi({ description: "answer keys and versionstamps without values" }),
    where: Where.optional(),
    index: z
      .strictObject({
        name: z.string(),
        prefix: z.array(z.unknown()).optional(),
        start: z.array(z.unknown()).optional(),
        end: z.array(z.unknown()).optional(),
      })
      .optional()
      .openapi({
        description:
          "Walk a secondary index instead of a key range: entries in the order of its fields' values (given as tagged JSON values), then of their keys",
        example: { name: "byAge", start: [18], end: [65] },
      }),
  })
  .openapi("ListRequest");

/**
 * A route's query parameters. Strict, as bodies are, so a misspelt parameter (`prefx`) is a 400
 * naming it rather than a wider request; `token` (the credential of clients that cannot set
 * headers, read by the authentication) is taken on every route.
 */
export const query = <T extends z.ZodRawShape>(shape: T) =>
  z.strictObject({
    ...shape,
    token: z
      .string()
      .optional()
      .openapi({ description: "The bearer token, for clients that cannot send headers" }),
  });

export const PathSelectorQuery = query({
  prefix: z
    .string()
    .optional()
    .openapi({ description: "Key path, e.g. users/~n:42 (see README)", example: "users" }),
  start: z.string().optional(),
  end: z.string().optional(),
});

const flag = z.enum(["true", "false", "1", "0"]).optional();
export const isTrue = (value: string | undefined) => value === "true" || value === "1";

export const ListQuery = PathSelectorQuery.extend({
  limit: z.coerce.number().int().positive().optional(),
  cursor: z.string().optional(),
  reverse: flag,
  metadata: flag,
  keysOnly: flag,
});

export const MetadataQuery = query({ metadata: flag });

export const Mutation = z
  .strictObject({
    type: z.enum(["set", "delete", "sum", "min", "max", "append", "prepend"]),
    key: z.array(z.unknown()),
    value: Value.optional(),
    expireIn: z.number().int().positive().optional(),
    ...WriteInfo,
  })
  .openapi("Mutation", {
    description:
      'sum/min/max take {"$u64": "n"} for a KvU64, or a number for a number; append/prepend take an array. {"$uuid": i} in a key or value is placeholder i.',
  });

export const AtomicBody = z
  .strictObject({
    checks: z
      .array(z.strictObject({ key: z.array(z.unknown()), versionstamp: Versionstamp.nullable() }))
      .default([]),
    mutations: z.array(Mutation).default([]),
  })
  .openapi("AtomicRequest");

export function entryJson(entry: KvEntryMaybe): z.infer<typeof Entry> {
  return {
    key: keyJson(entry.key),
    value: valueToJson(entry.value),
    versionstamp: entry.versionstamp,
    ...(entry.metadata && { metadata: { ...entry.metadata, tags: [...entry.metadata.tags] } }),
  };
}

export function keyJson(key: KvKey): z.infer<typeof Key> {
  return keyToJson(key) as z.infer<typeof Key>;
}
