/**
 * `cellar serve --mirrors <json>` (config field `mirrors`, env `CELLAR_MIRRORS`): PostgreSQL
 * mirrors started with the server and closed before it, each
 * `{ prefix, to, table, namespace?, direction? }`. The prefix is a JSON key (`["users"]`) or a key
 * path (`"users"`). Every mistake is a `ConfigError`, one line, with the URL's password hidden.
 */
import type { KvKey } from "../codec/key.js";
import type { Kv } from "../core/kv.js";
import { assertNamespaceName } from "../core/surface.js";
import { bareMessage, redactUrl } from "../errors.js";
import {
  type Mirror,
  type MirrorDirection,
  type MirrorLogger,
  mirror,
  mirrorConfig,
} from "../mirror/index.js";
import { keyFromJson, keyFromPath } from "../wire/json.js";
import { ConfigError } from "./serve-config.js";

/** One mirror of the configuration, checked. */
export interface MirrorSpec {
  readonly prefix: KvKey;
  readonly to: string;
  readonly table: string;
  readonly namespace?: string;
  readonly direction: MirrorDirection;
}

const FIELDS = ["prefix", "to", "table", "namespace", "direction"];

/**
 * The mirrors a setting holds (an array of objects, or one object), checked as `mirror` would
 * check them.
 *
 * @example
 * mirrorSpecs([{ prefix: ["users"], to: "postgres://app@db/app", table: "users" }]);
 */
export function mirrorSpecs(json: unknown): MirrorSpec[] {
  const list = Array.isArray(json) ? json : [json];
  const tables = new Set<string>();
  return list.map((item, i) => {
    const where = `mirrors[${i}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item))
      throw new ConfigError(
        `${where} must be an object { prefix, to, table, namespace?, direction? }`,
      );
    const fields = item as Record<string, unknown>;
    for (const field of Object.keys(fields)) {
      if (!FIELDS.includes(field))
        throw new ConfigError(
          `${where}: unknown field ${JSON.stringify(field)}; the fields are ${FIELDS.join(", ")}`,
        );
    }
    try {
      const prefix = prefixOf(fields.prefix);
      if (fields.namespace !== undefined) assertNamespaceName(fields.namespace);
      const config = mirrorConfig({
        prefix,
        to: fields.to as string,
        table: fields.table as string,
        ...(fields.direction !== undefined && { direction: fields.direction as MirrorDirection }),
      });
      const id = `${config.connectionString} ${config.schema}.${config.table}`;
      if (tables.has(id))
        throw new ConfigError(
          `${where}: another mirror already writes ${config.schema}.${config.table}`,
        );
      tables.add(id);
      return {
        prefix,
        to: fields.to as string,
        table: config.table,
        direction: config.direction,
        ...(fields.namespace !== undefined && { namespace: fields.namespace as string }),
      };
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      const message = bareMessage(error as Error);
      const to = typeof fields.to === "string" ? fields.to : "";
      throw new ConfigError(`${where}: ${to ? message.replaceAll(to, redactUrl(to)) : message}`);
    }
  });
}

function prefixOf(prefix: unknown): KvKey {
  if (typeof prefix === "string") return keyFromPath(prefix);
  if (Array.isArray(prefix)) return keyFromJson(prefix);
  throw new ConfigError(
    `prefix must be a JSON key (["users"]) or a key path ("users"), got ${JSON.stringify(prefix)}`,
  );
}

/**
 * Starts the mirrors of `specs` on `kv`, logging to `logger`; resolves to the function that
 * closes them all.
 */
export function startMirrors(
  kv: Kv,
  specs: readonly MirrorSpec[],
  logger: MirrorLogger,
): () => Promise<void> {
  const mirrors: Mirror[] = specs.map((spec) => {
    const view = spec.namespace === undefined ? kv : kv.namespace(spec.namespace);
    const started = mirror(view, {
      prefix: spec.prefix,
      to: spec.to,
      table: spec.table,
      direction: spec.direction,
      logger,
    });
    logger.info(
      { table: started.table, direction: spec.direction, to: redactUrl(spec.to) },
      `mirror ${started.table}: started`,
    );
    return started;
  });
  return async () => {
    await Promise.all(mirrors.map((m) => m.close()));
  };
}
