/**
 * The driver socket: the driver protocol's calls (`protocol.ts`) over one WebSocket, so a remote
 * client's call costs one round trip on a connection that stays open, and many calls are in
 * flight at once. Every frame is one JSON text:
 *
 * - client → server, a call: `{ "id": 7, "op": "read", "body": { … } }`, where `op` and `body`
 *   are those of `POST /api/driver/<op>` and `id` (an integer of the client's choosing, ≥ 0)
 *   comes back on its answer;
 * - server → client, once the connection is admitted: `{ "ready": true }`; then per call
 *   `{ "id": 7, "result": { … } }` (the HTTP route's response body) or
 *   `{ "id": 7, "error": { "code", "message" } }` (its error body), in the order calls finish.
 *
 * A call the server refuses (a token without write access, a value over the limit, an unknown
 * op) answers its own error and the connection stays. A frame that is not such a call (not JSON,
 * binary, no id) closes the connection with 4400 and `INVALID_REQUEST: <why>`; a frame over the
 * server's size limit closes it with 1009. See `server/driver-socket.ts` for the other closes.
 */
import { KvError, type KvErrorCode } from "../errors.js";
import { DRIVER_OPS, type DriverOp } from "./protocol.js";

export const DRIVER_SOCKET_PATH = "/api/driver/socket";

/** A call as the server reads it; `op` is checked against {@link DRIVER_OPS} by the server. */
export interface CallFrame {
  readonly id: number;
  readonly op: unknown;
  readonly body: unknown;
}

/** What the server answers: the socket is ready, or a call's result or error. */
export type ServerFrame =
  | { readonly ready: true }
  | { readonly id: number; readonly result: unknown }
  | { readonly id: number; readonly error: { readonly code: string; readonly message: string } };

/** Encodes a call; `body` is JSON text already. */
export function callFrame(id: number, op: DriverOp, body: string): string {
  return `{"id":${id},"op":"${op}","body":${body}}`;
}

/** Encodes a call's answer; `result` is JSON text already. */
export function resultFrame(id: number, result: string): string {
  return `{"id":${id},"result":${result}}`;
}

/** Encodes a refused call's answer, with the error body HTTP would send. */
export function errorFrame(id: number, error: { readonly error: object }): string {
  return `{"id":${id},"error":${JSON.stringify(error.error)}}`;
}

export const READY_FRAME = '{"ready":true}';

/**
 * Reads a call frame; throws `INVALID_REQUEST` for anything that is not one (the server then
 * closes the connection: without an id there is no call to answer).
 */
export function decodeCallFrame(text: string): CallFrame {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch (error) {
    throw new KvError("INVALID_REQUEST", `a frame is JSON: ${(error as Error).message}`);
  }
  if (typeof frame !== "object" || frame === null || Array.isArray(frame))
    throw new KvError("INVALID_REQUEST", "a frame is a JSON object { id, op, body }");
  const { id, op, body } = frame as Record<string, unknown>;
  if (!Number.isSafeInteger(id) || (id as number) < 0)
    throw new KvError("INVALID_REQUEST", "a frame's id is an integer ≥ 0");
  return { id: id as number, op, body };
}

/** Whether `op` names a driver call. */
export function isDriverOp(op: unknown): op is DriverOp {
  return typeof op === "string" && (DRIVER_OPS as readonly string[]).includes(op);
}

/** Reads a server frame; throws `UNAVAILABLE` for anything else (the client drops the socket). */
export function decodeServerFrame(text: string): ServerFrame {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    frame = null;
  }
  const f = frame as Record<string, unknown> | null;
  if (f !== null && typeof f === "object") {
    if (f.ready === true) return { ready: true };
    if (Number.isSafeInteger(f.id) && "result" in f)
      return { id: f.id as number, result: f.result };
    const error = f.error as { code?: unknown; message?: unknown } | undefined;
    if (
      Number.isSafeInteger(f.id) &&
      typeof error?.code === "string" &&
      typeof error.message === "string"
    )
      return { id: f.id as number, error: { code: error.code, message: error.message } };
  }
  throw new KvError("UNAVAILABLE", "the server sent a frame that is not a driver answer");
}

/** The error a refused call's answer stands for. */
export function answerError(error: { readonly code: string; readonly message: string }): KvError {
  return new KvError(error.code as KvErrorCode, error.message);
}
