/**
 * What the workspace sync client and server agree on besides y-protocols itself: the path, the
 * message types of y-websocket's framing, and the close codes that say why the server ended a
 * connection.
 *
 * Close codes 4400–4499 mirror HTTP's 4xx (the y-websocket client does not reconnect after
 * them); the others are RFC 6455's, after which it reconnects with a growing pause.
 */
import { KvError, type KvErrorCode } from "../errors.js";

/** y-websocket's message types: the first varuint of every message. */
export const MESSAGE_SYNC = 0;
export const MESSAGE_AWARENESS = 1;
export const MESSAGE_AUTH = 2;
export const MESSAGE_QUERY_AWARENESS = 3;

/** The path of workspace `id`'s sync socket. */
export const syncPath = (id: string): string => `/workspaces/${encodeURIComponent(id)}/sync`;

/** Close codes for refusals the client cannot fix by reconnecting. */
export const CLOSE_CODES: Readonly<Partial<Record<KvErrorCode, number>>> = {
  INVALID_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  NOT_FOUND: 4404,
};

/** The server is shutting down: reconnect later. */
export const CLOSE_GOING_AWAY = 1001;
/** A message larger than the server takes (`ws` closes with it on its own). */
export const CLOSE_TOO_BIG = 1009;
/** The server could not store an update: reconnecting resends it. */
export const CLOSE_SERVER_ERROR = 1011;
/** Too many connections: reconnect later. */
export const CLOSE_TRY_LATER = 1013;

/** A close reason is at most 123 bytes of UTF-8: `CODE: message`, cut to fit. */
export function closeReason(code: KvErrorCode, message: string): string {
  let reason = `${code}: ${message}`;
  while (encoder.encode(reason).byteLength > 123) reason = `${reason.slice(0, -2)}…`;
  return reason;
}

const encoder = new TextEncoder();

/** The error a permanent close stands for, as the client reports it. */
export function closeError(code: number, reason: string): KvError {
  const match = /^([A-Z_]+): ([\s\S]*)$/.exec(reason);
  const known = Object.entries(CLOSE_CODES).find(([, value]) => value === code)?.[0];
  const errorCode = (match?.[1] ?? known ?? "UNAVAILABLE") as KvErrorCode;
  return new KvError(errorCode, match?.[2] ?? (reason || `the server closed with ${code}`));
}
