/**
 * KV Connect's metadata exchange (`proto/kv-connect.md` in denoland/denokv): the client POSTs
 * `{ supportedVersions }` to the database URL; the server answers the protocol version both
 * speak, the database id, the data-path endpoints, the token to use on them and when this
 * answer expires, exactly the fields of `kv-metadata-exchange-response.v<version>.json`.
 */
import { KvError } from "../errors.js";

/** Protocol versions this server speaks: 1 and 2 differ only in headers, 3 adds watch. */
export const SUPPORTED_VERSIONS = [1, 2, 3] as const;
export type ProtocolVersion = (typeof SUPPORTED_VERSIONS)[number];

/** How long a client may use an answer before it asks again. */
const METADATA_LIFETIME_MS = 24 * 60 * 60 * 1000;

export interface DatabaseMetadata {
  readonly version: ProtocolVersion;
  readonly databaseId: string;
  readonly endpoints: readonly { readonly url: string; readonly consistency: "strong" }[];
  readonly token: string;
  readonly expiresAt: string;
}

/**
 * The highest version both sides speak. An empty body means a client that only speaks
 * version 1; a body that is not `{ supportedVersions: number[] }` is an `INVALID_REQUEST`.
 */
export function negotiateVersion(body: string): ProtocolVersion {
  if (body.trim() === "") return 1;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new KvError(
      "INVALID_REQUEST",
      'the metadata exchange body must be JSON: { "supportedVersions": [1, 2, 3] }',
    );
  }
  const versions = (parsed as { supportedVersions?: unknown } | null)?.supportedVersions;
  if (!Array.isArray(versions) || !versions.every((v) => typeof v === "number")) {
    throw new KvError(
      "INVALID_REQUEST",
      "supportedVersions must be an array of protocol version numbers",
    );
  }
  const common = SUPPORTED_VERSIONS.filter((v) => versions.includes(v));
  const best = common.at(-1);
  if (best === undefined) {
    throw new KvError(
      "INVALID_REQUEST",
      `no common protocol version: the client speaks ${JSON.stringify(versions)}, this server ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  return best;
}

/**
 * The answer for one database. `endpointPath` is where its data path lives; version 1 clients
 * need an absolute URL, later ones resolve a path against the metadata URL.
 */
export function databaseMetadata(options: {
  version: ProtocolVersion;
  databaseId: string;
  endpointPath: string;
  requestUrl: string;
  token: string;
  now: number;
}): DatabaseMetadata {
  const url =
    options.version === 1
      ? new URL(options.endpointPath, options.requestUrl).href
      : options.endpointPath;
  return {
    version: options.version,
    databaseId: options.databaseId,
    endpoints: [{ url, consistency: "strong" }],
    token: options.token,
    expiresAt: new Date(options.now + METADATA_LIFETIME_MS).toISOString(),
  };
}
