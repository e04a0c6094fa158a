/**
 * How the server applies a client store's write: through the normal commit path (the view's
 * limits, a typed store's schema, a rule's schema), with the conflict policy of each key's
 * prefix, once per write however often the client resends it.
 *
 * A write is applied once: a record `[client id, write id]` is kept for 30 days in Cellar's
 * namespace `$sync:<namespace>`, written in the same commit as the write, so a write resent after
 * its answer was lost is answered `duplicate` with its own commit's versionstamp and not applied
 * again. A write that was answered with a conflict has no record: resent, it is weighed again.
 * Entries name their writer by a hash of the client id (`modifiedBy: "sync:<hash>"`), never the
 * id itself, which only the client and the records know.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { hash } from "#crypto";
import { utf8Encode } from "../../codec/bytes.js";
import { encodeKey, type KvKey, startsWith } from "../../codec/key.js";
import type { AtomicOperation } from "../../core/atomic.js";
import type { Kv } from "../../core/kv.js";
import { coreOf, reservedView } from "../../core/surface.js";
import type { KvEntryMaybe } from "../../core/types.js";
import { bareMessage, describe, fail, KvError } from "../../errors.js";
import { ValidationError, validateWith } from "../../typed/schemas.js";
import { type AnyStore, storedValue } from "../../typed/store.js";
import type {
  ServerMessage,
  SyncEntry,
  SyncErrorBody,
  SyncMutation,
  SyncWrite,
} from "../../wire/sync.js";

/**
 * What the server does with a write to a key that changed on the server since the write's base:
 * `reject` keeps the server's entry and tells the client (with both versions);
 * `last-writer-wins` applies the write anyway; a function decides (see {@link SyncMerge}).
 */
export type ConflictPolicy = "reject" | "last-writer-wins" | SyncMerge;

/**
 * Merges a client's write with the server's entry when they conflict; returns the value to
 * store, or `undefined` to keep the server's entry and report the conflict as `reject` would.
 *
 * @example
 * const merge: SyncMerge = ({ client, server }) => ({ ...(server.value as object), ...(client as object) });
 */
export type SyncMerge = (conflict: {
  readonly key: KvKey;
  /** The value the client wrote; `null` for a delete (`deleted` is true). */
  readonly client: unknown;
  readonly deleted: boolean;
  /** The server's entry now. */
  readonly server: KvEntryMaybe;
  /** The versionstamp the client's write was based on. */
  readonly base: string | null;
}) => unknown;

/** How writes under `prefix` are applied. The longest matching prefix's rule applies. */
export interface SyncRule {
  readonly prefix: KvKey;
  readonly conflict?: ConflictPolicy;
  /** Values set under the prefix must validate (Standard Schema: zod, valibot, arktype). */
  readonly schema?: StandardSchemaV1;
  /** Clients may read but not write under the prefix. */
  readonly readOnly?: boolean;
}

export interface SyncOptions {
  readonly rules?: readonly SyncRule[];
  /** The policy where no rule sets one (default `"reject"`: nothing is overwritten unseen). */
  readonly conflict?: ConflictPolicy;
  /** Typed stores: a set of `[store.name, id]` is validated and stored as `store.set` would. */
  readonly stores?: readonly AnyStore[];
}

/**
 * Where a write's commit stands among its connection's: `turn` settles once the previous write's
 * commit was issued, and the write calls `issued` once its own is (or it needs none).
 */
export interface CommitOrder {
  readonly turn: Promise<void>;
  readonly issued: () => void;
}

const IN_ORDER: CommitOrder = { turn: Promise.resolve(), issued: () => {} };

/** Commits of one write when its keys keep changing between its read and its commit. */
const ATTEMPTS = 10;
/** How long the record that a write was applied is kept, for a resend to find it: 30 days. */
const RECORD_TTL_MS = 30 * 24 * 3600 * 1000;

interface CompiledRule {
  readonly prefix: Uint8Array;
  readonly rule: SyncRule;
}

/** Checks `options` and returns the function that applies one client write. */
export function syncApplier(options: SyncOptions = {}) {
  const policy = options.conflict ?? "reject";
  assertPolicy(policy, "conflict");
  const rules: CompiledRule[] = (options.rules ?? []).map((rule, i) => {
    if (typeof rule !== "object" || rule === null || !Array.isArray(rule.prefix))
      fail("INVALID_ARGUMENT", `sync rule ${i} needs a prefix (a key), got ${describe(rule)}`);
    if (rule.conflict !== undefined) assertPolicy(rule.conflict, `rules[${i}].conflict`);
    return { prefix: encodeKey(rule.prefix), rule };
  });
  rules.sort((a, b) => b.prefix.length - a.prefix.length);
  const stores = new Map((options.stores ?? []).map((store) => [store.name, store]));
  const ruleOf = (key: KvKey) => rules.find((r) => startsWith(encodeKey(key), r.prefix))?.rule;

  return {
    /** Applies `write` of `client` on `kv`: the answer to send (`ack`, `conflict` or `refused`). */
    async apply(
      kv: Kv,
      client: string,
      write: SyncWrite,
      order: CommitOrder = IN_ORDER,
    ): Promise<ServerMessage> {
      try {
        return await applyOnce(kv, client, write, order);
      } catch (error) {
        if (error instanceof KvError && error.code !== "UNAVAILABLE")
          return { type: "refused", id: write.id, error: errorOf(error) };
        throw error;
      }
    },
    /** The value clients see for a stored one: a typed store's entry without its envelope. */
    present,
  };

  async function applyOnce(
    kv: Kv,
    client: string,
    write: SyncWrite,
    order: CommitOrder,
  ): Promise<ServerMessage> {
    if (write.namespace !== undefined && write.namespace !== kv.namespaceName)
      fail(
        "FORBIDDEN",
        `this connection writes namespace ${JSON.stringify(kv.namespaceName)}, not ${JSON.stringify(write.namespace)}`,
      );
    const records = reservedView(kv, `$sync:${kv.namespaceName}`);
    const policies = write.mutations.map((m) => {
      const rule = ruleOf(m.key);
      if (rule?.readOnly)
        fail("FORBIDDEN", `keys under ${JSON.stringify(rule.prefix)} are read-only for clients`);
      return rule?.conflict ?? policy;
    });
    const values = await Promise.all(write.mutations.map((m) => validated(m, ruleOf(m.key))));
    // Entries name the writer by a hash of its id: the id itself keys its writes' records.
    const info = { modifiedBy: `sync:${hash("sha256", utf8Encode(client)).slice(0, 16)}` };
    const keys = write.mutations.map((m) => m.key);
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const record = await records.get([client, write.id]);
      if (record.versionstamp !== null)
        return {
          type: "ack",
          id: write.id,
          versionstamp: record.versionstamp,
          entries: [],
          duplicate: true,
        };
      const current = await kv.getMany(keys);
      const conflicts: number[] = [];
      const written = [...values];
      for (const [i, m] of write.mutations.entries()) {
        const server = current[i]!;
        const chosen = policies[i]!;
        if (server.versionstamp === write.base[i] || chosen === "last-writer-wins") continue;
        if (chosen === "reject") {
          conflicts.push(i);
          continue;
        }
        const merged = await merge(chosen, {
          key: m.key,
          client: m.type === "set" ? plainValue(values[i]) : null,
          deleted: m.type === "delete",
          server: presented(server),
          base: write.base[i]!,
        });
        if (merged === undefined) conflicts.push(i);
        else
          written[i] = await validated(
            { ...m, type: "set", value: merged } as SyncMutation,
            ruleOf(m.key),
          );
      }
      if (conflicts.length > 0) {
        const now = await kv.currentVersionstamp();
        const entries = conflicts.map((i) => entryOf(presented(current[i]!), keys[i]!, now));
        return { type: "conflict", id: write.id, entries, mutations: conflicts };
      }
      const op = kv.atomic();
      // The keys a policy compares are checked: a change between the read and the commit reads
      // again; last-writer-wins needs no check.
      const checks = [
        ...write.checks,
        ...keys
          .map((key, i) => ({ key, versionstamp: current[i]!.versionstamp }))
          .filter((_, i) => policies[i] !== "last-writer-wins"),
      ];
      // One more check guards the record that the write was applied.
      const { maxChecks } = coreOf(kv).core.limits;
      if (checks.length + 1 > maxChecks)
        fail(
          "TOO_MANY_CHECKS",
          `a synced write is checked once per key it writes under a reject or merge policy, once per check of its own, and once for its record: ${checks.length + 1} here, and the server takes at most ${maxChecks}; write fewer keys at a time, or under last-writer-wins`,
        );
      op.check(...checks);
      for (const [i, m] of write.mutations.entries()) {
        const mutation: SyncMutation =
          written[i] === DELETE
            ? { type: "delete", key: m.key }
            : ({ ...m, value: written[i] } as SyncMutation);
        stage(kv, op, mutation, info);
      }
      const mark = records.atomic().check({ key: [client, write.id], versionstamp: null });
      mark.set([client, write.id], 1, { expireIn: RECORD_TTL_MS });
      // The first attempt commits in its turn; a retry (its keys changed) is out of turn anyway.
      if (attempt === 1) await order.turn;
      const committing = op.join(mark).commit();
      order.issued();
      const result = await committing;
      if (result.ok) {
        const entries = write.mutations.map(
          (m, i): SyncEntry =>
            written[i] === DELETE
              ? { key: m.key, value: null, versionstamp: result.versionstamp, deleted: true }
              : {
                  key: m.key,
                  value: plainValue(written[i]),
                  versionstamp: result.versionstamp,
                },
        );
        return { type: "ack", id: write.id, versionstamp: result.versionstamp, entries };
      }
      // A failed check of the write's own: report the checked and the written keys' entries.
      if (write.checks.length > 0) {
        const checked = await kv.getMany(write.checks.map((c) => c.key));
        const moved = write.checks.some((c, i) => checked[i]!.versionstamp !== c.versionstamp);
        if (moved) {
          const now = await kv.currentVersionstamp();
          const after = await kv.getMany(keys);
          const entries = [
            ...write.checks.map((c, i) => entryOf(presented(checked[i]!), c.key, now)),
            ...keys.map((key, i) => entryOf(presented(after[i]!), key, now)),
          ];
          return {
            type: "conflict",
            id: write.id,
            entries,
            mutations: write.mutations.map((_, i) => i),
          };
        }
      }
    }
    // The keys keep changing under this write: the connection closes, and the client resends it.
    throw new KvError("UNAVAILABLE", `the write's keys kept changing through ${ATTEMPTS} attempts`);
  }

  /** A merge function's result; one that throws refuses the write rather than the connection. */
  async function merge(chosen: SyncMerge, input: Parameters<SyncMerge>[0]): Promise<unknown> {
    try {
      return await chosen(input);
    } catch (error) {
      return fail(
        "CONFLICT",
        `the server could not merge this write with its entry of ${JSON.stringify(input.key.map(String))}: the merge function failed (${bareMessage(error as Error)})`,
      );
    }
  }

  /** A server entry as clients see it. */
  function presented(entry: KvEntryMaybe): KvEntryMaybe {
    return entry.versionstamp === null
      ? entry
      : { ...entry, value: present(entry.key, entry.value) };
  }

  function present(key: KvKey, value: unknown): unknown {
    return storeOf(key) ? storedValue(value) : value;
  }

  /** The value a mutation stores, validated by its store's or its rule's schema. */
  async function validated(m: SyncMutation, rule: SyncRule | undefined): Promise<unknown> {
    if (m.type === "delete") return DELETE;
    const store = storeOf(m.key);
    if (store) {
      const result = await validateWith(store.schema, m.value);
      if (!result.ok)
        throw new ValidationError(
          `store ${JSON.stringify(store.name)} entry ${JSON.stringify(m.key[1])}`,
          result.issues,
        );
      return new StoreValue(store, m.value, result.value);
    }
    if (!rule?.schema) return m.value;
    const result = await validateWith(rule.schema, m.value);
    if (!result.ok)
      throw new ValidationError(`the value of ${JSON.stringify(m.key)}`, result.issues);
    return result.value;
  }

  function storeOf(key: KvKey): AnyStore | undefined {
    if (key.length !== 2 || typeof key[0] !== "string" || typeof key[1] !== "string")
      return undefined;
    return stores.get(key[0]);
  }

  function stage(kv: Kv, op: AtomicOperation, m: SyncMutation, info: { modifiedBy: string }): void {
    if (m.type === "delete") {
      op.delete(m.key, info);
      return;
    }
    if (m.value instanceof StoreValue) {
      m.value.store
        .bind(kv)
        .in(op)
        .set(m.key[1] as string, m.value.value, {
          ...info,
          ...(m.expireIn !== undefined && { expireIn: m.expireIn }),
        });
      return;
    }
    op.set(m.key, m.value, { ...info, ...(m.expireIn !== undefined && { expireIn: m.expireIn }) });
  }
}

const DELETE = Symbol("delete");

/** A value bound for a typed store, which `store.in(op).set` validates and wraps. */
class StoreValue {
  constructor(
    readonly store: AnyStore,
    /** What the client sent, which the store validates and wraps again when staged. */
    readonly value: unknown,
    /** What the store keeps: the schema's output. */
    readonly output: unknown,
  ) {}
}

/** The value clients see for one a write stores. */
const plainValue = (value: unknown) => (value instanceof StoreValue ? value.output : value);

/** The server's entry for a conflict; an absent key is reported deleted as of `now`. */
function entryOf(entry: KvEntryMaybe, key: KvKey, now: string): SyncEntry {
  return entry.versionstamp === null
    ? { key, value: null, versionstamp: now, deleted: true }
    : {
        key,
        value: entry.value,
        versionstamp: entry.versionstamp,
        ...(entry.metadata && { metadata: entry.metadata }),
      };
}

function errorOf(error: KvError): SyncErrorBody {
  return {
    code: error.code,
    message: error.message,
    ...(error instanceof ValidationError && { issues: error.issues }),
  };
}

function assertPolicy(policy: unknown, what: string): void {
  if (policy !== "reject" && policy !== "last-writer-wins" && typeof policy !== "function")
    fail(
      "INVALID_ARGUMENT",
      `${what} is "reject", "last-writer-wins" or a merge function, got ${describe(policy)}`,
    );
}
