/**
 * The UI's one way to the server: its own HTTP API, same origin, with the token the user entered
 * (kept in sessionStorage, so it goes when the tab does) and the namespace they picked.
 */

import { createParser } from "eventsource-parser";
import { currentNamespace } from "./router.js";

const TOKEN = "cellar.token";

/** An error answer of the API, with the server's code and message as it sent them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** What a schema found wrong with a value (`INVALID_VALUE`). */
    readonly issues?: { path: (string | number)[]; message: string }[],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const credentials = {
  token: (): string => sessionStorage.getItem(TOKEN) ?? "",
  setToken(token: string): void {
    if (token) sessionStorage.setItem(TOKEN, token);
    else sessionStorage.removeItem(TOKEN);
  },
};

function headers(json: boolean, namespace = true): Record<string, string> {
  const out: Record<string, string> = {};
  const token = credentials.token();
  const ns = currentNamespace();
  if (token) out.authorization = `Bearer ${token}`;
  if (ns && namespace) out["x-cellar-namespace"] = ns;
  if (json) out["content-type"] = "application/json";
  return out;
}

/**
 * Calls the API; resolves to the JSON answer, or throws `ApiError` with the server's message.
 * `namespace: false` leaves the namespace to the path (`/workspaces/{id}/…`).
 */
export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  options: { namespace?: boolean } = {},
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined, options.namespace !== false),
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
  } catch (error) {
    throw new ApiError(0, "NETWORK", `the server did not answer: ${(error as Error).message}`);
  }
  const text = await response.text();
  let json: unknown;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const error = (
      json as
        | { error?: { code?: string; message?: string; issues?: ApiError["issues"] } }
        | undefined
    )?.error;
    throw new ApiError(
      response.status,
      error?.code ?? `HTTP_${response.status}`,
      error?.message ?? (text.slice(0, 200) || response.statusText),
      error?.issues,
    );
  }
  if (json === undefined) return text as T;
  return json as T;
}

/**
 * Opens a Server-Sent Events stream with fetch, which (unlike EventSource) sends the token and
 * namespace headers, so no token ends up in a URL. Resolves once the server accepted the stream;
 * `onEvent` gets each message; the returned function closes it.
 */
export async function openStream(
  path: string,
  onEvent: (type: string, data: string, id: string | undefined) => void,
  onEnd: (error?: unknown) => void,
): Promise<() => void> {
  const controller = new AbortController();
  const response = await fetch(path, {
    headers: { ...headers(false), accept: "text/event-stream" },
    signal: controller.signal,
  }).catch((error: Error) => {
    throw new ApiError(0, "NETWORK", `the server did not answer: ${error.message}`);
  });
  if (!response.ok || !response.body) {
    const text = await response.text();
    let error: { code?: string; message?: string } | undefined;
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error;
    } catch {}
    throw new ApiError(
      response.status,
      error?.code ?? `HTTP_${response.status}`,
      error?.message ?? text,
    );
  }
  const parser = createParser({
    onEvent: (message) => onEvent(message.event ?? "message", message.data, message.id),
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
      onEnd();
    } catch (error) {
      onEnd(controller.signal.aborted ? undefined : error);
    }
  })();
  return () => controller.abort();
}

export type Access = "read" | "write" | "admin";

export interface Session {
  tokens: boolean;
  name: string | null;
  access: Access;
  namespace: string;
  namespaces: string[];
}

/** A key part in the API's JSON form. */
export type JsonPart =
  | string
  | number
  | boolean
  | { $bigint: string }
  | { $bytes: string }
  | { $number: string };
export type JsonKey = JsonPart[];

export interface Metadata {
  version: number;
  createdAt: number;
  updatedAt: number;
  expiresAt: number | null;
  tags: string[];
  modifiedBy: string | null;
  comment: string | null;
  dataHash: string | null;
}

export interface Entry {
  key: JsonKey;
  value: unknown;
  versionstamp: string | null;
  metadata?: Metadata;
}

export interface Page {
  entries: { key: JsonKey; value?: unknown; versionstamp: string }[];
  cursor: string | null;
  hasMore: boolean;
}

export interface Revision {
  version: number;
  versionstamp: string;
  timestamp: number;
  modifiedBy: string | null;
  comment: string | null;
  dataHash: string | null;
  value?: unknown;
}
