/**
 * The settings of `cellar serve`, from three sources: flags, then the environment, then a JSON
 * config file (`--config`), then the defaults. Each setting is declared once here with its flag,
 * its environment variable, its config-file field and one parser, so a value means the same
 * wherever it comes from.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { KvKey } from "../codec/key.js";
import { LOG_LEVELS } from "../observe/logging.js";
import type { ServerOptions } from "../server/serve.js";
import type { SyncOptions, SyncRule } from "../server/sync/apply.js";
import { keyFromJson, keyFromPath } from "../wire/json.js";

/** A configuration mistake: reported as one line, and the command exits with status 2. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

interface Kind<T> {
  /** What a valid value is, for messages: "an integer in [0, 65535]". */
  readonly expected: string;
  /** From a flag or an environment variable. */
  fromText(text: string): T | undefined;
  /** From a config-file field. */
  fromJson(value: unknown): T | undefined;
}

const integer = (min: number, max: number): Kind<number> => {
  const check = (n: unknown) =>
    typeof n === "number" && Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  return {
    expected: `an integer in [${min}, ${max}]`,
    fromText: (text) => (/^\d+$/.test(text.trim()) ? check(Number(text)) : undefined),
    fromJson: check,
  };
};

const text: Kind<string> = {
  expected: "a non-empty string",
  fromText: (t) => (t === "" ? undefined : t),
  fromJson: (v) => (typeof v === "string" && v !== "" ? v : undefined),
};

const oneOf = <T extends string>(...choices: T[]): Kind<T> => ({
  expected: `one of ${choices.join(", ")}`,
  fromText: (t) => (choices.includes(t as T) ? (t as T) : undefined),
  fromJson: (v) => (choices.includes(v as T) ? (v as T) : undefined),
});

const flag: Kind<boolean> = {
  expected: "true or false",
  fromText: (t) => ({ true: true, "1": true, false: false, "0": false })[t],
  fromJson: (v) => (typeof v === "boolean" ? v : undefined),
};

const list: Kind<string[]> = {
  expected: "a comma-separated list (an array of strings in a config file)",
  fromText: (t) => {
    const items = t
      .split(",")
      .map((item) => item.trim())
      .filter(Boolean);
    return items.length > 0 ? items : undefined;
  },
  fromJson: (v) =>
    Array.isArray(v) && v.length > 0 && v.every((item) => typeof item === "string" && item !== "")
      ? (v as string[])
      : undefined,
};

/** Key prefixes: key paths (`audit/~n:1`) in flags and the environment, JSON keys in the file. */
const prefixes: Kind<KvKey[]> = {
  expected: "key prefixes (key paths such as audit/logs, or JSON keys in a config file)",
  fromText: (t) => {
    try {
      return t.split(",").map((path) => keyFromPath(path.trim()));
    } catch {
      return undefined;
    }
  },
  fromJson: (v) => {
    if (!Array.isArray(v)) return undefined;
    try {
      return v.map((key) => keyFromJson(key));
    } catch {
      return undefined;
    }
  },
};

/**
 * Client store sync: `false` (off), or `{ conflict?, rules?: [{ prefix, conflict?, readOnly? }] }`
 * with policies "reject" or "last-writer-wins" (merge functions are for the API).
 */
const syncSetting: Kind<SyncOptions | false> = {
  expected:
    'false, or a JSON object { conflict?, rules?: [{ prefix, conflict?, readOnly? }] } with conflict "reject" or "last-writer-wins"',
  fromText: (t) => {
    try {
      return syncSetting.fromJson(JSON.parse(t));
    } catch {
      return undefined;
    }
  },
  fromJson: (v) => {
    if (v === false) return false;
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    const { conflict, rules, ...rest } = v as Record<string, unknown>;
    const policy = (p: unknown) => p === undefined || p === "reject" || p === "last-writer-wins";
    if (Object.keys(rest).length > 0 || !policy(conflict)) return undefined;
    if (rules !== undefined && !Array.isArray(rules)) return undefined;
    const parsed: SyncRule[] = [];
    for (const rule of (rules ?? []) as unknown[]) {
      if (typeof rule !== "object" || rule === null) return undefined;
      const {
        prefix,
        conflict: ruleConflict,
        readOnly,
        ...extra
      } = rule as Record<string, unknown>;
      if (Object.keys(extra).length > 0 || !policy(ruleConflict)) return undefined;
      if (readOnly !== undefined && typeof readOnly !== "boolean") return undefined;
      let key: KvKey;
      try {
        key = keyFromJson(prefix);
      } catch {
        return undefined;
      }
      parsed.push({
        prefix: key,
        ...(ruleConflict !== undefined && {
          conflict: ruleConflict as "reject" | "last-writer-wins",
        }),
        ...(readOnly !== undefined && { readOnly }),
      });
    }
    return {
      ...(conflict !== undefined && { conflict: conflict as "reject" | "last-writer-wins" }),
      rules: parsed,
    };
  },
};

/** Mirrors: JSON everywhere, an array of objects (or one); `cli/mirrors.ts` checks each. */
const mirrorList: Kind<unknown[]> = {
  expected: "a JSON array of mirrors, each { prefix, to, table, namespace?, direction? }",
  fromText: (t) => {
    try {
      return mirrorList.fromJson(JSON.parse(t));
    } catch {
      return undefined;
    }
  },
  fromJson: (v) =>
    Array.isArray(v) && v.length > 0 ? v : typeof v === "object" && v !== null ? [v] : undefined,
};

interface Setting<T = unknown> {
  /** The config-file field, and the flag in kebab case. */
  readonly name: string;
  readonly kind: Kind<T>;
  readonly argument?: string;
  readonly description: string;
  /** Environment variables, first found wins. Default `CELLAR_<NAME>`. */
  readonly env?: readonly string[];
  readonly default?: T;
  /** The default `--help` shows where the server, not the command, applies it. */
  readonly shown?: string;
  /** A path, resolved against the config file's folder when it comes from there. */
  readonly path?: boolean;
}

const setting = <T>(s: Setting<T>): Setting => s as Setting;

const POSITIVE = integer(1, Number.MAX_SAFE_INTEGER);

/** Every setting of `cellar serve`, in the order `--help` lists them. */
export const SETTINGS: readonly Setting[] = [
  setting({
    name: "db",
    kind: text,
    argument: "<file|url>",
    description: "SQLite file, :memory:, or postgres://user@host:5432/db?schema=name",
    env: ["CELLAR_DB", "DATABASE_URL"],
    default: "data/cellar.db",
    path: true,
  }),
  setting({
    name: "host",
    kind: text,
    argument: "<host>",
    description: "interface to listen on",
    env: ["HOST"],
    default: "127.0.0.1",
  }),
  setting({
    name: "port",
    kind: integer(0, 65535),
    argument: "<port>",
    description: "port to listen on (0 = any free port)",
    env: ["PORT"],
    default: 8080,
  }),
  setting({
    name: "tokens",
    kind: text,
    argument: "<file>",
    description: "JSON file of bearer tokens scoped to namespaces and access",
    path: true,
  }),
  setting({
    name: "namespaceFrom",
    kind: oneOf("token", "header", "host"),
    argument: "<source>",
    description: "where a request's namespace comes from: token, header or host",
    default: "token",
  }),
  setting({
    name: "durability",
    kind: oneOf("full", "normal"),
    argument: "<mode>",
    description: "SQLite durability: full or normal",
    default: "full",
  }),
  setting({
    name: "insecure",
    kind: flag,
    description: "allow a non-loopback host without tokens",
    default: false,
  }),
  setting({
    name: "tlsCert",
    kind: text,
    argument: "<file>",
    description: "PEM certificate (chain): serve HTTPS, HTTP/1.1 and HTTP/2 by ALPN",
    path: true,
  }),
  setting({
    name: "tlsKey",
    kind: text,
    argument: "<file>",
    description: "PEM private key of --tls-cert",
    path: true,
  }),
  setting({
    name: "cors",
    kind: list,
    argument: "<origins>",
    description: "comma-separated origins whose pages may call the API (* for any)",
  }),
  setting({
    name: "logLevel",
    kind: oneOf(...LOG_LEVELS),
    argument: "<level>",
    description:
      "JSON log lines on stdout: a line per request at info, a line per operation at debug",
    default: "info",
  }),
  setting({
    name: "logKeys",
    kind: flag,
    description: "log keys: request paths and operations' keys (not logged by default)",
    default: false,
  }),
  setting({
    name: "workspaces",
    kind: text,
    argument: "<module>",
    description:
      "JS or TS module whose exports are workspace definitions (defineWorkspace), served at /workspaces/{id}",
    path: true,
  }),
  setting({
    name: "workspaceMirror",
    kind: text,
    argument: "<dir>",
    description:
      "folder where each workspace's document is mirrored into SQL tables, <dir>/<id>.sqlite (_kv and one table per workspace table)",
    path: true,
  }),
  setting({
    name: "sync",
    kind: syncSetting,
    argument: "<json>",
    description:
      'client store sync at /api/sync: false to turn it off, or { "conflict": "reject"|"last-writer-wins", "rules": [{ "prefix": [...], "conflict", "readOnly" }] } (default: on, conflicts rejected)',
  }),
  setting({
    name: "mirrors",
    kind: mirrorList,
    argument: "<json>",
    description:
      'PostgreSQL mirrors of key prefixes, a JSON array of { prefix, to, table, namespace?, direction?: "out"|"both" }',
  }),
  setting({
    name: "maxValueSize",
    kind: integer(1, 256 * 1024 * 1024),
    argument: "<bytes>",
    description: "largest encoded value",
    shown: "65536",
  }),
  setting({
    name: "maxKeySize",
    kind: integer(1, 64 * 1024),
    argument: "<bytes>",
    description: "largest encoded key",
    shown: "2048",
  }),
  setting({
    name: "maxChecks",
    kind: integer(1, 10_000),
    argument: "<n>",
    description: "checks per atomic operation",
    shown: "100",
  }),
  setting({
    name: "maxMutations",
    kind: integer(1, 100_000),
    argument: "<n>",
    description: "mutations per atomic operation",
    shown: "1000",
  }),
  setting({
    name: "maxReadKeys",
    kind: integer(1, 100_000),
    argument: "<n>",
    description: "keys per getMany or watch",
    shown: "1000",
  }),
  setting({
    name: "historyDepth",
    kind: integer(1, 1000),
    argument: "<n>",
    description: "revisions kept per key",
    shown: "10",
  }),
  setting({
    name: "keepValues",
    kind: prefixes,
    argument: "<prefixes>",
    description: "comma-separated key paths whose history keeps values (audit,logs/~n:1)",
  }),
  setting({
    name: "sweepInterval",
    kind: integer(0, 86_400_000),
    argument: "<ms>",
    description: "milliseconds between expiry sweeps, 0 = off",
    shown: "1000",
  }),
  setting({
    name: "maxBodySize",
    kind: POSITIVE,
    argument: "<bytes>",
    description: "largest request body",
    shown: "4 × max value size, at least 1 MiB",
  }),
  setting({
    name: "maxPageSize",
    kind: POSITIVE,
    argument: "<n>",
    description: "largest page of a list",
    shown: "1000",
  }),
  setting({
    name: "maxWatchKeys",
    kind: POSITIVE,
    argument: "<n>",
    description: "keys one watch may name",
    shown: "100",
  }),
  setting({
    name: "maxStreams",
    kind: POSITIVE,
    argument: "<n>",
    description: "watch and event streams, long polls and listens open at once",
    shown: "10000",
  }),
  setting({
    name: "pingInterval",
    kind: POSITIVE,
    argument: "<ms>",
    description: "milliseconds between keep-alive comments on streams",
    shown: "15000",
  }),
];

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envNames = (s: Setting) =>
  s.env ?? [`CELLAR_${kebab(s.name).replaceAll("-", "_").toUpperCase()}`];

/** Adds `--config` and a flag per setting to `command`; none has a commander default. */
export function addServeOptions(command: Command): Command {
  command.option("--config <file>", "JSON file of these settings (env CELLAR_CONFIG)");
  for (const s of SETTINGS) {
    const spec = `--${kebab(s.name)}${s.argument ? ` ${s.argument}` : ""}`;
    const note = [
      s.shown
        ? `default ${s.shown}`
        : s.default !== undefined && s.kind !== flag
          ? `default ${s.default}`
          : "",
      `env ${envNames(s).join(" or ")}`,
    ]
      .filter(Boolean)
      .join("; ");
    const option = new Option(spec, `${s.description} (${note})`);
    if (s.argument) {
      option.argParser((raw: string) => {
        const value = s.kind.fromText(raw);
        if (value === undefined) throw new InvalidArgumentError(`expected ${s.kind.expected}`);
        return value;
      });
    }
    command.addOption(option);
  }
  return command;
}

/** Values by setting name, as far as one source gives them. */
type Values = Record<string, unknown>;

function fromEnvironment(env: NodeJS.ProcessEnv): Values {
  const values: Values = {};
  for (const s of SETTINGS) {
    const name = envNames(s).find((n) => env[n] !== undefined && env[n] !== "");
    if (name === undefined) continue;
    const value = s.kind.fromText(env[name]!);
    if (value === undefined) {
      throw new ConfigError(`${name} must be ${s.kind.expected}, got ${JSON.stringify(env[name])}`);
    }
    values[s.name] = value;
  }
  return values;
}

function fromFile(path: string): Values {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`config file ${path} must hold a JSON object of settings`);
  }
  const values: Values = {};
  for (const [field, raw] of Object.entries(json)) {
    const s = SETTINGS.find((candidate) => candidate.name === field);
    if (!s) {
      throw new ConfigError(
        `config file ${path}: unknown field ${JSON.stringify(field)}; the fields are ${SETTINGS.map((x) => x.name).join(", ")}`,
      );
    }
    const value = s.kind.fromJson(raw);
    if (value === undefined) {
      throw new ConfigError(
        `config file ${path}: ${field} must be ${s.kind.expected}, got ${JSON.stringify(raw)}`,
      );
    }
    // Paths in a config file are relative to the file, so it works from any directory.
    values[field] =
      s.path && typeof value === "string" && isRelativePath(value)
        ? resolve(dirname(path), value)
        : value;
  }
  return values;
}

/** A relative file path, not `:memory:` or a URL. */
const isRelativePath = (value: string) =>
  value !== ":memory:" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !isAbsolute(value);

/** The settings in force: flags over the environment over the config file over the defaults. */
export function resolveSettings(flags: Values, env: NodeJS.ProcessEnv): Values {
  const defaults = Object.fromEntries(
    SETTINGS.filter((s) => s.default !== undefined).map((s) => [s.name, s.default]),
  );
  const configPath = (flags.config as string | undefined) ?? env.CELLAR_CONFIG;
  const file = configPath ? fromFile(configPath) : {};
  const given = Object.fromEntries(
    SETTINGS.filter((s) => flags[s.name] !== undefined).map((s) => [s.name, flags[s.name]]),
  );
  return { ...defaults, ...file, ...fromEnvironment(env), ...given };
}

/** The certificate and key files, read; both or neither. */
function tlsOf(cert: string | undefined, key: string | undefined): ServerOptions["tls"] {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw new ConfigError("TLS needs both a certificate (tlsCert) and its key (tlsKey)");
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(`cannot read TLS ${what} ${path}: ${(error as Error).message}`);
    }
  };
  return { cert: read(cert, "certificate"), key: read(key, "key") };
}

/** `startServer`'s options for resolved settings. */
export function serverOptions(settings: Values): ServerOptions & {
  db: string;
  logLevel: (typeof LOG_LEVELS)[number];
  /** The module of workspace definitions, which the command loads (see `workspaces.ts`). */
  workspacesModule?: string;
  /** The mirrors to start, unchecked (see `mirrors.ts`). */
  mirrors?: unknown[];
} {
  // resolveSettings checked every value against its setting's kind.
  const v = settings as Record<string, never> & { db: string };
  const defined = (entries: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined));
  const limits = defined({
    maxValueSize: v.maxValueSize,
    maxKeySize: v.maxKeySize,
    maxChecks: v.maxChecks,
    maxMutations: v.maxMutations,
    maxReadKeys: v.maxReadKeys,
  });
  const history = defined({ depth: v.historyDepth, keepValues: v.keepValues });
  const tls = tlsOf(v.tlsCert, v.tlsKey);
  return {
    db: v.db,
    host: v.host,
    port: v.port,
    ...defined({
      tokensFile: v.tokens,
      maxBodySize: v.maxBodySize,
      maxPageSize: v.maxPageSize,
      maxWatchKeys: v.maxWatchKeys,
      maxStreams: v.maxStreams,
      pingInterval: v.pingInterval,
      cors: v.cors,
      workspacesModule: v.workspaces,
      workspaceMirror: v.workspaceMirror,
      mirrors: v.mirrors,
      sync: v.sync,
    }),
    namespaceFrom: v.namespaceFrom,
    insecure: v.insecure === true,
    logLevel: v.logLevel ?? "info",
    logKeys: v.logKeys === true,
    ...(tls && { tls }),
    openOptions: {
      durability: v.durability,
      ...(Object.keys(limits).length > 0 && { limits }),
      ...(Object.keys(history).length > 0 && { history }),
      ...(v.sweepInterval !== undefined && { sweepInterval: v.sweepInterval }),
    },
  };
}
