/**
 * Every TypeScript snippet of the README type-checks under the project's strict settings, as a
 * module importing `cellar` the way an application would. A snippet that continues an earlier
 * one names what it uses in an HTML comment just above it, which the rendered README hides:
 * `<!-- context: declare const mail: { id: string }; -->`. `<!-- context: skip (why) -->` leaves
 * a snippet out (one written for Deno, say); the reason is required.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { expect, it } from "vitest";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

interface Snippet {
  readonly line: number;
  readonly code: string;
  readonly context: string;
  readonly skip: string | null;
}

function snippets(markdown: string): Snippet[] {
  const lines = markdown.split("\n");
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== "```ts") continue;
    const end = lines.indexOf("```", i + 1);
    const comment = /^<!-- context: (.*) -->$/.exec(lines[i - 1] ?? "")?.[1] ?? "";
    const skip = /^skip \((.+)\)$/.exec(comment)?.[1] ?? null;
    out.push({
      line: i + 1,
      code: lines.slice(i + 1, end).join("\n"),
      context: skip === null ? comment : "",
      skip,
    });
    i = end;
  }
  return out;
}

const ENTRY_POINTS: Record<string, string> = {
  cellar: "src/index.ts",
  "cellar/client": "src/client.ts",
  "cellar/server": "src/server/index.ts",
  "cellar/observe": "src/observe/index.ts",
  "cellar/testing": "src/testing/index.ts",
  "cellar/workspace": "src/workspace.ts",
};

/** Type-checks the snippets, each as its own `.mts` module; returns the diagnostics by line. */
function check(list: readonly Snippet[]): string[] {
  const files = new Map(
    list.map((s) => [join(ROOT, "test", "docs", `readme-${s.line}.mts`), s] as const),
  );
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    // TypeScript's default libraries for the DOM, async iteration of a ReadableStream included.
    lib: ["lib.es2023.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts", "lib.dom.asynciterable.d.ts"],
    types: ["node"],
    strict: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: true,
    noEmit: true,
    paths: Object.fromEntries(
      Object.entries(ENTRY_POINTS).map(([name, path]) => [name, [join(ROOT, path)]]),
    ),
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => {
    const snippet = files.get(name);
    // `export {}` makes each snippet a module of its own, as an application file is.
    return snippet ? `${snippet.context}\n${snippet.code}\nexport {};\n` : readFile(name);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => files.has(name) || fileExists(name);
  const program = ts.createProgram([...files.keys()], options, host);
  return [...files.keys()].flatMap((name) =>
    ts.getPreEmitDiagnostics(program, program.getSourceFile(name)).map((d) => {
      const at =
        d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : null;
      const snippet = files.get(name)!;
      // The context is one line above the snippet's first line.
      const line = at ? snippet.line + at.line : snippet.line;
      return `README.md:${line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    }),
  );
}

it("type-checks every TypeScript snippet of the README", () => {
  const all = snippets(README);
  expect(all.length).toBeGreaterThan(5);
  expect(check(all.filter((s) => s.skip === null))).toEqual([]);
});

it("fails on a snippet that does not compile, naming its README line", () => {
  const bad = snippets('text\n```ts\nimport { openKv } from "cellar";\nawait openKv(42);\n```\n');
  expect(check(bad)).toEqual([expect.stringMatching(/^README\.md:4: Argument of type 'number'/)]);
});
