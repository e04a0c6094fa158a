/** Atomic operations over HTTP: checks, then mutations, all or nothing. */
import { createRoute, type OpenAPIHono, type z } from "@hono/zod-openapi";
import type { KvKeyPart } from "../../codec/key.js";
import { KvU64 } from "../../codec/u64.js";
import type { AtomicOperation, KvAtomicKey, KvUuid } from "../../core/atomic.js";
import { bareMessage, describe, KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import { keyFromJson, valueFromJson } from "../../wire/json.js";
import { AtomicBody, CommitOk, ErrorBody } from "../schemas.js";
import { body, errors, json } from "./keys.js";

type MutationBody = z.infer<typeof AtomicBody>["mutations"][number];

const isUuidRef = (value: unknown): value is { $uuid: number } =>
  typeof value === "object" &&
  value !== null &&
  Object.keys(value).length === 1 &&
  Number.isSafeInteger((value as { $uuid?: unknown }).$uuid);

/** Resolves `{"$uuid": i}` references to the operation's placeholders, creating them in order. */
class Placeholders {
  readonly #made: KvUuid[] = [];
  constructor(private readonly op: AtomicOperation) {}

  get(index: number): KvUuid {
    if (index < 0 || index > 100)
      throw new KvError("INVALID_MUTATION", `$uuid index must be in [0, 100], got ${index}`);
    while (this.#made.length <= index) this.#made.push(this.op.uuid());
    return this.#made[index]!;
  }

  key(json: unknown[]): KvAtomicKey {
    // Parse the whole key at once (a `$uuid` part stands in as "") so errors name the right part.
    const parsed = keyFromJson(json.map((part) => (isUuidRef(part) ? "" : part)));
    return json.map((part, i): KvKeyPart | KvUuid =>
      isUuidRef(part) ? this.get(part.$uuid) : parsed[i]!,
    );
  }

  value(json: unknown): unknown {
    return valueFromJson(json, {
      $uuid: (index) => {
        if (!Number.isSafeInteger(index))
          throw new KvError("INVALID_MUTATION", "$uuid takes an integer index");
        return this.get(index as number);
      },
    });
  }
}

/** A `sum`/`min`/`max` operand: `{"$u64": "<decimal>"}` for a `KvU64`, a JSON number for a number. */
function operand(m: MutationBody): KvU64 | number {
  const value = valueFromJson(m.value);
  if (value instanceof KvU64 || typeof value === "number") return value;
  throw new KvError(
    "INVALID_MUTATION",
    `'${m.type}' takes {"$u64": "<decimal>"} or a number, got ${describe(value)}`,
  );
}

function apply(op: AtomicOperation, refs: Placeholders, m: MutationBody): void {
  const key = refs.key(m.key);
  const options = {
    ...(m.expireIn !== undefined && { expireIn: m.expireIn }),
    ...(m.tags && { tags: m.tags }),
    ...(m.modifiedBy !== undefined && { modifiedBy: m.modifiedBy }),
    ...(m.comment !== undefined && { comment: m.comment }),
  };
  switch (m.type) {
    case "set":
      if (!("value" in m)) throw new KvError("INVALID_MUTATION", "a set mutation needs a value");
      op.set(key, refs.value(m.value), options);
      return;
    case "delete":
      op.delete(key, options);
      return;
    case "sum":
    case "min":
    case "max":
      op[m.type](key, operand(m), options);
      return;
    case "append":
    case "prepend": {
      const items = refs.value(m.value);
      if (!Array.isArray(items))
        throw new KvError("INVALID_MUTATION", `'${m.type}' takes an array value`);
      op[m.type](key, items, options);
    }
  }
}

/**
 * Adds the checks and mutations of an atomic request body (checked against `AtomicBody`) to
 * `op`; the `cellar atomic` command reads the same document. A malformed mutation throws its
 * `KvError` with `mutation <i>: ` in front of the message.
 */
export function addAtomicBody(op: AtomicOperation, body: z.infer<typeof AtomicBody>): void {
  const refs = new Placeholders(op);
  op.check(
    ...body.checks.map((check) => ({
      key: keyFromJson(check.key),
      versionstamp: check.versionstamp,
    })),
  );
  body.mutations.forEach((mutation, i) => {
    try {
      apply(op, refs, mutation);
    } catch (error) {
      if (!(error instanceof KvError)) throw error;
      throw new KvError(error.code, `mutation ${i}: ${bareMessage(error)}`, { cause: error });
    }
  });
}

export function atomicRoutes(app: OpenAPIHono<ServerEnv>): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/api/atomic",
      tags: ["atomic"],
      summary: "Commit checks and mutations atomically",
      description:
        'Checks hold or nothing is written (409 CHECK_FAILED). {"$uuid": i} anywhere in a key or value stands for the i-th UUIDv7 of this commit, returned in `uuids`.',
      request: body(AtomicBody),
      responses: {
        200: json(CommitOk),
        409: {
          description: "A check failed; nothing was written",
          content: { "application/json": { schema: ErrorBody } },
        },
        ...errors,
      },
    }),
    async (c) => {
      requireAccess(c, "write");
      const op = c.get("kv").atomic();
      addAtomicBody(op, c.req.valid("json"));
      const result = await op.commit();
      if (!result.ok) throw new KvError("CHECK_FAILED", "a check failed; nothing was written");
      return c.json(
        { ok: true as const, versionstamp: result.versionstamp, uuids: [...result.uuids] },
        200,
      );
    },
  );
}
