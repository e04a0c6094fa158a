/**
 * `cellar tokens create|list|revoke`: edits the tokens file `cellar serve --tokens` reads
 * (`{ "tokens": [{ token, namespaces, access, name? }] }`, see README "Tokens, access and
 * namespaces"). Secrets come from node:crypto; the file is rewritten whole, owner-only, through a
 * temporary file and a rename, and checked as the server checks it before it replaces the old one.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { type Command, Option } from "commander";
import type { Access, TokenGrant } from "../http/auth.js";
import { subcommand } from "./command.js";
import { printJson, printTable, wantsJson, writeLine } from "./output.js";
import { action, CliError, EXIT, usage } from "./target.js";

interface FileFlags {
  readonly file: string;
  readonly json?: boolean;
}

/** The server's reader of tokens files, loaded by the tokens commands only. */
const loadTokens = async (path: string) => (await import("../http/auth.js")).loadTokens(path);

/** The grants of `path`; none when the file does not exist yet. */
async function readGrants(path: string): Promise<TokenGrant[]> {
  if (!existsSync(path)) return [];
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new CliError(
      EXIT.failure,
      `cannot read tokens file ${path}: ${(error as Error).message}`,
    );
  }
  const tokens = (json as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(tokens))
    throw new CliError(EXIT.failure, `tokens file ${path}: no "tokens" array`);
  return tokens.length === 0 ? [] : loadTokens(path);
}

async function writeGrants(path: string, grants: readonly TokenGrant[]): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify({ tokens: grants }, null, 2)}\n`, { mode: 0o600 });
  try {
    if (grants.length > 0) await loadTokens(temporary);
    renameSync(temporary, path);
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** A secret shown in a listing: enough to tell tokens apart, not enough to use one. */
const masked = (token: string) => `${token.slice(0, 4)}…`;

const fileOption = () =>
  new Option("--file <path>", "the tokens file").env("CELLAR_TOKENS").makeOptionMandatory();

interface CreateFlags extends FileFlags {
  readonly namespace: string[];
  readonly access: Access;
  readonly name?: string;
}

export function registerTokenCommands(program: Command): void {
  const tokens = subcommand(program, "tokens", "create, list and revoke the server's tokens", [
    "cellar tokens create --file tokens.json --namespace tenant-a --access write --name app",
    "cellar tokens list --file tokens.json",
    "cellar tokens revoke app --file tokens.json",
  ]);

  subcommand(
    tokens,
    "create",
    "add a token with a random secret (256 bits, base64url) and print it; the file is created if missing",
    [
      "cellar tokens create --file tokens.json --namespace tenant-a --access write --name app",
      "cellar tokens create --file tokens.json --namespace '*' --access admin --name ops",
      "cellar tokens create --file tokens.json --namespace '' --namespace reports --access read",
    ],
  )
    .addOption(fileOption())
    .requiredOption(
      "--namespace <name...>",
      'namespaces the token may use: "*" for every one, "" for the default namespace',
    )
    .addOption(
      new Option("--access <level>", "what the token may do")
        .choices(["read", "write", "admin"])
        .makeOptionMandatory(),
    )
    .option("--name <name>", "a label for logs, and for revoke")
    .option("--json", "print NDJSON even on a terminal")
    .action(
      action(async (flags: CreateFlags) => {
        const grants = await readGrants(flags.file);
        if (flags.name !== undefined && grants.some((g) => g.name === flags.name)) {
          throw usage(`a token named ${JSON.stringify(flags.name)} is already in ${flags.file}`);
        }
        const grant: TokenGrant = {
          token: randomBytes(32).toString("base64url"),
          namespaces: flags.namespace,
          access: flags.access,
          ...(flags.name !== undefined && { name: flags.name }),
        };
        try {
          await writeGrants(flags.file, [...grants, grant]);
        } catch (error) {
          throw usage((error as Error).message.replace(/^\[cellar\] /, ""));
        }
        if (wantsJson(flags)) await printJson(grant);
        else {
          await writeLine(grant.token);
          process.stderr.write(
            `cellar: token ${grant.name ?? `#${grants.length + 1}`} added to ${flags.file}; its secret is shown only now\n`,
          );
        }
        return EXIT.ok;
      }),
    );

  subcommand(tokens, "list", "the file's tokens, secrets masked", [
    "cellar tokens list --file tokens.json",
  ])
    .addOption(fileOption())
    .option("--json", "print NDJSON even on a terminal")
    .action(
      action(async (flags: FileFlags) => {
        const grants = await readGrants(flags.file);
        const rows = grants.map((g, i) => ({
          name: g.name ?? `#${i + 1}`,
          access: g.access,
          namespaces: g.namespaces,
          token: masked(g.token),
        }));
        if (wantsJson(flags)) for (const row of rows) await printJson(row);
        else {
          await printTable(
            ["NAME", "ACCESS", "NAMESPACES", "TOKEN"],
            rows.map((r) => [
              r.name,
              r.access,
              r.namespaces.map((n) => JSON.stringify(n)).join(", "),
              r.token,
            ]),
          );
        }
        return EXIT.ok;
      }),
    );

  subcommand(
    tokens,
    "revoke <name-or-token>",
    "remove the tokens of that name (or that secret); a server reads the file when it starts",
    ["cellar tokens revoke app --file tokens.json"],
  )
    .addOption(fileOption())
    .option("--json", "print NDJSON even on a terminal")
    .action(
      action(async (which: string, flags: FileFlags) => {
        const grants = await readGrants(flags.file);
        const kept = grants.filter((g) => g.name !== which && g.token !== which);
        if (kept.length === grants.length) {
          throw new CliError(
            EXIT.notFound,
            `no token named ${JSON.stringify(which)} in ${flags.file}`,
          );
        }
        await writeGrants(flags.file, kept);
        const revoked = grants.length - kept.length;
        if (wantsJson(flags)) await printJson({ ok: true, revoked });
        else await writeLine(`revoked ${revoked}`);
        return EXIT.ok;
      }),
    );
}
