/**
 * The import layering rule (`.dependency-cruiser.cjs`, run by `npm run lint:imports`): a fixture
 * tree shaped like `src/` with one import per case proves that each wrong-way import is caught
 * by the rule meant for it and that the allowed ones pass; then the real tree is checked.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DEPCRUISE = join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");
const CONFIG = join(ROOT, ".dependency-cruiser.cjs");

/**
 * Runs the rule over `src/` below `cwd` exactly as `npm run lint:imports` does; resolves to the
 * exit status and the violations it printed, as `from -> to: rule`.
 */
function cruise(cwd: string): { status: number | null; violations: string[] } {
  const run = spawnSync(process.execPath, [DEPCRUISE, "src", "--config", CONFIG], {
    cwd,
    encoding: "utf8",
  });
  const violations = [...run.stdout.matchAll(/^\s*error (\S+): (\S+) → (\S+)$/gm)].map(
    ([, rule, from, to]) => `${from} -> ${to}: ${rule}`,
  );
  return { status: run.status, violations: violations.sort() };
}

/** One import in the fixture: `from` imports `to` (both under src/); `rule` is what must catch it. */
interface Case {
  from: string;
  to: string;
  typeOnly?: boolean;
  rule?: string;
}

const WRONG_WAY: Case[] = [
  { from: "codec/bad.ts", to: "core/kv.ts", rule: "codec-imports-codec-and-errors" },
  { from: "contract/bad.ts", to: "wire/json.ts", rule: "contract-imports-codec-and-errors" },
  {
    from: "drivers/memory/bad.ts",
    to: "drivers/sqlite/index.ts",
    rule: "driver-imports-contract-codec-errors-shared",
  },
  {
    from: "drivers/memory/bad-core.ts",
    to: "core/kv.ts",
    rule: "driver-imports-contract-codec-errors-shared",
  },
  {
    from: "drivers/sqlite/bad-wire.ts",
    to: "wire/json.ts",
    rule: "driver-imports-contract-codec-errors-shared",
  },
  {
    from: "drivers/remote/bad.ts",
    to: "drivers/memory/index.ts",
    rule: "remote-driver-imports-contract-codec-errors-shared-wire",
  },
  {
    from: "drivers/shared/bad.ts",
    to: "drivers/memory/index.ts",
    rule: "shared-driver-helpers-import-the-contract",
  },
  { from: "wire/bad.ts", to: "core/kv.ts", rule: "wire-imports-codec-contract-errors" },
  {
    from: "core/bad.ts",
    to: "drivers/memory/index.ts",
    rule: "core-imports-codec-contract-errors",
  },
  {
    from: "core/bad-type.ts",
    to: "drivers/memory/index.ts",
    typeOnly: true,
    rule: "core-imports-codec-contract-errors",
  },
  { from: "core/bad-typed.ts", to: "typed/index.ts", rule: "core-imports-codec-contract-errors" },
  { from: "core/bad-face.ts", to: "server/app.ts", rule: "core-imports-codec-contract-errors" },
  {
    from: "typed/bad.ts",
    to: "drivers/sqlite/index.ts",
    rule: "extension-typed-imports-core-codec-contract-errors",
  },
  {
    from: "typed/bad-face.ts",
    to: "http/errors.ts",
    rule: "extension-typed-imports-core-codec-contract-errors",
  },
  {
    from: "typed/bad-contract.ts",
    to: "contract/index.ts",
    rule: "extension-imports-contract-types-only",
  },
  {
    from: "typed/bad-database.ts",
    to: "core/database.ts",
    rule: "faces-and-extensions-use-the-core-surface",
  },
  { from: "http/bad.ts", to: "server/app.ts", rule: "face-http-imports-only-what-is-below-it" },
  {
    from: "http/bad-kv-connect.ts",
    to: "kv-connect/routes.ts",
    rule: "face-http-imports-only-what-is-below-it",
  },
  {
    from: "kv-connect/bad.ts",
    to: "server/app.ts",
    rule: "face-kv-connect-imports-only-what-is-below-it",
  },
  {
    from: "server/bad.ts",
    to: "drivers/memory/index.ts",
    rule: "face-server-imports-only-what-is-below-it",
  },
  // Two levels of `../`: the rule sees the resolved file, not the specifier's spelling.
  {
    from: "server/routes/bad-database.ts",
    to: "core/database.ts",
    rule: "faces-and-extensions-use-the-core-surface",
  },
  {
    from: "cli/bad.ts",
    to: "drivers/sqlite/index.ts",
    rule: "face-cli-imports-only-what-is-below-it",
  },
  {
    from: "testing/bad.ts",
    to: "core/kv.ts",
    rule: "conformance-suite-imports-public-entry-points",
  },
];

const ALLOWED: Case[] = [
  { from: "index.ts", to: "drivers/memory/index.ts" },
  { from: "index.ts", to: "core/database.ts" },
  { from: "open.ts", to: "drivers/sqlite/index.ts" },
  { from: "server/index.ts", to: "drivers/memory/index.ts" },
  { from: "codec/key.ts", to: "errors.ts" },
  { from: "contract/index.ts", to: "codec/key.ts" },
  { from: "drivers/shared/range.ts", to: "contract/index.ts" },
  { from: "drivers/memory/index.ts", to: "drivers/shared/range.ts" },
  { from: "drivers/memory/index.ts", to: "drivers/memory/queues.ts" },
  { from: "drivers/sqlite/index.ts", to: "contract/index.ts" },
  { from: "drivers/remote/index.ts", to: "wire/json.ts" },
  { from: "wire/json.ts", to: "contract/index.ts" },
  { from: "core/kv.ts", to: "core/database.ts" },
  { from: "core/kv.ts", to: "contract/index.ts" },
  { from: "core/surface.ts", to: "core/database.ts" },
  { from: "typed/index.ts", to: "core/surface.ts" },
  { from: "typed/index.ts", to: "contract/index.ts", typeOnly: true },
  { from: "http/errors.ts", to: "core/surface.ts" },
  { from: "kv-connect/routes.ts", to: "http/errors.ts" },
  { from: "server/app.ts", to: "kv-connect/routes.ts" },
  { from: "server/app.ts", to: "typed/index.ts" },
  { from: "server/app.ts", to: "open.ts" },
  { from: "server/routes/keys.ts", to: "wire/json.ts" },
  { from: "cli/index.ts", to: "server/index.ts" },
  { from: "testing/index.ts", to: "index.ts" },
  // Co-located tests are not part of the layering.
  { from: "typed/store.test.ts", to: "open.ts" },
];

/** Writes a fixture `src/` in which every file exports `x` and `T` and holds its cases' imports. */
function writeFixture(dir: string, cases: Case[]): void {
  const files = new Map<string, string[]>();
  for (const { from, to, typeOnly } of cases) {
    if (!files.has(to)) files.set(to, []);
    let specifier = posix.relative(posix.dirname(from), to).replace(/\.ts$/, ".js");
    if (!specifier.startsWith(".")) specifier = `./${specifier}`;
    const names = typeOnly ? "type { T }" : "{ x }";
    files.set(from, [...(files.get(from) ?? []), `import ${names} from "${specifier}";`]);
  }
  for (const [file, imports] of files) {
    const path = join(dir, "src", file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(
      path,
      [...imports, "export const x = 1;", "export type T = number;", ""].join("\n"),
    );
  }
  copyFileSync(join(ROOT, "tsconfig.json"), join(dir, "tsconfig.json"));
}

const dir = mkdtempSync(join(tmpdir(), "cellar-layers-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the import layering rule", () => {
  it("catches each wrong-way import with its own rule, and passes the allowed ones", () => {
    writeFixture(dir, [...WRONG_WAY, ...ALLOWED]);
    const { status, violations } = cruise(dir);
    const expected = WRONG_WAY.map(({ from, to, rule }) => `src/${from} -> src/${to}: ${rule}`);
    expect(violations).toEqual(expected.sort());
    expect(status).not.toBe(0);
  });

  // Holds on the tree as it is: it fails wherever a real import points the wrong way.
  it("finds no wrong-way import in src/", () => {
    expect(cruise(ROOT)).toEqual({ status: 0, violations: [] });
  });
});
