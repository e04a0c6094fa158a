/**
 * Queue semantics shared by the storage drivers: how a message is leased, retried and
 * dead-lettered. Drivers store {@link StoredMessage}s and call these inside their write
 * transaction, so every driver moves messages through the same states:
 *
 *   ready ──dequeue──▶ leased ──ack──▶ (deleted)
 *     ▲                  │
 *     └──nack / lease expired, deliveries left──┘
 *                        └──nack / lease expired, none left──▶ dead (value written to keysIfUndelivered)
 *
 * An expired lease fails at the instant it expired, not when a dequeue notices it: its backoff
 * runs from `lockedUntil`, and a message with no deliveries left is dead as of then. Until a
 * dequeue stores that state, readers see it through {@link effectiveState}.
 */
import type {
  DeadMessage,
  Enqueue,
  LeasedMessage,
  Mutation,
  Settlement,
} from "../../contract/index.js";

export interface StoredMessage {
  readonly id: string;
  /** Enqueue order within the database; FIFO within a priority. */
  readonly seq: number;
  readonly state: "ready" | "leased" | "dead";
  readonly value: Enqueue["value"];
  readonly priority: number;
  readonly availableAt: number;
  readonly attempts: number;
  readonly backoffSchedule: readonly number[];
  readonly keysIfUndelivered: readonly Uint8Array[];
  readonly token: string | null;
  readonly lockedUntil: number | null;
  readonly enqueuedAt: number;
  readonly failedAt: number | null;
  readonly error: string | null;
}

export const LOCK_EXPIRED = "lock expired";

/** The columns SQL drivers store a message in, less its value and lists, which each encodes its own way. */
export interface MessageColumns {
  seq: number;
  id: string;
  state: number;
  priority: number;
  available_at: number;
  attempts: number;
  encoding: number;
  token: string | null;
  locked_until: number | null;
  enqueued_at: number;
  failed_at: number | null;
  error: string | null;
}

/** A message from its SQL columns and the value and lists its driver decoded. */
export function messageOf(
  row: MessageColumns,
  value: Enqueue["value"],
  backoffSchedule: readonly number[],
  keysIfUndelivered: readonly Uint8Array[],
): StoredMessage {
  return {
    id: row.id,
    seq: row.seq,
    state: STATE_OF_CODE[row.state]!,
    value,
    priority: row.priority,
    availableAt: row.available_at,
    attempts: row.attempts,
    backoffSchedule,
    keysIfUndelivered,
    token: row.token,
    lockedUntil: row.locked_until,
    enqueuedAt: row.enqueued_at,
    failedAt: row.failed_at,
    error: row.error,
  };
}

/** How SQL drivers store a message's state. */
export const STATE_CODE = { ready: 0, leased: 1, dead: 2 } as const;
export const STATE_OF_CODE = ["ready", "leased", "dead"] as const;

export function newMessage(enqueue: Enqueue, seq: number, now: number): StoredMessage {
  return {
    id: enqueue.id,
    seq,
    state: "ready",
    value: enqueue.value,
    priority: enqueue.priority,
    availableAt: enqueue.availableAt,
    attempts: 0,
    backoffSchedule: enqueue.backoffSchedule,
    keysIfUndelivered: enqueue.keysIfUndelivered,
    token: null,
    lockedUntil: null,
    enqueuedAt: now,
    failedAt: null,
    error: null,
  };
}

export const maxAttempts = (message: StoredMessage): number => message.backoffSchedule.length + 1;

export function lease(
  message: StoredMessage,
  now: number,
  visibilityTimeout: number,
): StoredMessage {
  return {
    ...message,
    state: "leased",
    attempts: message.attempts + 1,
    token: crypto.randomUUID(),
    lockedUntil: now + visibilityTimeout,
  };
}

/**
 * The state after a delivery that failed at `failedAt`: ready again once its backoff has run
 * from then, or dead as of then.
 */
export function afterFailure(
  message: StoredMessage,
  failedAt: number,
  error: string,
  delay?: number,
): StoredMessage {
  const cleared = { ...message, token: null, lockedUntil: null, error };
  if (message.attempts >= maxAttempts(message)) return { ...cleared, state: "dead", failedAt };
  const backoff = delay ?? message.backoffSchedule[message.attempts - 1] ?? 0;
  return { ...cleared, state: "ready", availableAt: failedAt + backoff };
}

/** Whether a settlement given with `token` may apply: it names this message's live lease. */
export const holdsLease = (message: StoredMessage, token: string, now: number): boolean =>
  message.state === "leased" && message.token === token && message.lockedUntil! > now;

/**
 * What a settlement does to a message whose lease it holds (see {@link holdsLease}): `null` for
 * an `ack` (the message is deleted); the lease moved on for an `extend`; for a `nack`, the state
 * after the failed delivery (ready after its delay or backoff, or dead).
 */
export function settled(
  message: StoredMessage,
  settlement: Settlement,
  now: number,
): StoredMessage | null {
  switch (settlement.type) {
    case "ack":
      return null;
    case "extend":
      return { ...message, lockedUntil: now + settlement.ms };
    case "nack":
      return afterFailure(message, now, settlement.error ?? "nack", settlement.delay);
  }
}

export const leaseExpired = (message: StoredMessage, now: number): boolean =>
  message.state === "leased" && message.lockedUntil! <= now;

/** A leased message whose lease expired, as the failed delivery it was at `lockedUntil`. */
export const afterExpiry = (message: StoredMessage): StoredMessage =>
  afterFailure(message, message.lockedUntil!, LOCK_EXPIRED);

/** The message as of `now`: an expired lease is the failed delivery it became on expiry. */
export const effectiveState = (message: StoredMessage, now: number): StoredMessage =>
  leaseExpired(message, now) ? afterExpiry(message) : message;

/** A dead message back on its queue, ready now, with its deliveries restored. */
export function revive(message: StoredMessage, now: number): StoredMessage {
  return { ...message, state: "ready", attempts: 0, availableAt: now, failedAt: null, error: null };
}

/** The mutations that record an undelivered message's value under its keys. */
export function undeliveredMutations(message: StoredMessage): Mutation[] {
  return message.keysIfUndelivered.map((key) => ({
    type: "set",
    key,
    value: message.value,
    expiresAt: null,
  }));
}

export function toLeased(message: StoredMessage): LeasedMessage {
  return {
    id: message.id,
    value: message.value,
    priority: message.priority,
    attempts: message.attempts,
    maxAttempts: maxAttempts(message),
    enqueuedAt: message.enqueuedAt,
    token: message.token!,
    lockedUntil: message.lockedUntil!,
  };
}

export function toDead(message: StoredMessage): DeadMessage {
  return {
    id: message.id,
    value: message.value,
    priority: message.priority,
    attempts: message.attempts,
    enqueuedAt: message.enqueuedAt,
    failedAt: message.failedAt ?? message.enqueuedAt,
    error: message.error,
  };
}
