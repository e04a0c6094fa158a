/**
 * The import layering of `src/`, checked by dependency-cruiser (`npm run lint:imports`), which
 * resolves every specifier to a file first, so a rule never depends on how many `../` a relative
 * import spells. README "Architecture" describes the layers.
 *
 * Each layer lists what it may import from the project; anything else under `src/` is an error.
 * To add an extension folder, add its name to `EXTENSIONS`; to add a face, to `FACES` (and say
 * in `FACE_MAY_IMPORT` which other faces it builds on).
 */

/** Extensions: built on the core, never on a driver; imported by faces and entry points only. */
const EXTENSIONS = ["typed", "observe", "workspace", "mirror"];
/**
 * What else an extension builds on: workspaces reuse the typed columns, the metrics report the
 * mirrors, and mirrors write keys and values in the wire's JSON forms.
 */
const EXTENSION_MAY_IMPORT = { workspace: ["typed"], observe: ["mirror"], mirror: ["wire"] };
/** Faces, bottom up. Each may import everything below the faces, plus what it lists here. */
const FACE_MAY_IMPORT = {
  http: [],
  offline: [],
  "kv-connect": ["http"],
  server: ["http", "kv-connect"],
  cli: ["http", "kv-connect", "server"],
  // The hooks name the client store's contract (offline/types.ts) only: see the rule below.
  react: ["offline"],
  // The admin web UI is browser code that speaks to the server over HTTP only: it shows keys and
  // values in the wire's JSON forms (wire/, codec/) and imports no other face.
  ui: [],
};
const FACES = Object.keys(FACE_MAY_IMPORT);
/** Entry points: they expose the layers below them, so they may import what they expose. */
const ENTRY_POINTS =
  "^src/(index|open|backup|client|api|workspace|react)\\.ts$|^src/server/index\\.ts$";

const folder = (name) => `src/${name}/`;
const anyOf = (paths) => `^(${paths.join("|")})`;
const ERRORS = "src/errors\\.ts$";
const CODEC = folder("codec");
const CONTRACT = folder("contract");
const CORE = folder("core");
const WIRE = folder("wire");

/** `from` may import only the project files matched by `allowed` (and any package or builtin). */
const layer = (name, comment, from, allowed) => ({
  name,
  comment,
  severity: "error",
  from: { path: from, pathNot: ENTRY_POINTS },
  to: { path: "^src/", pathNot: anyOf(allowed) },
});

const BELOW_FACES = [ERRORS, CODEC, CONTRACT, WIRE, CORE, ...EXTENSIONS.map(folder)];

module.exports = {
  forbidden: [
    layer(
      "codec-imports-codec-and-errors",
      "errors.ts and codec/ are the bottom: they import nothing of the project but each other.",
      anyOf([ERRORS, CODEC]),
      [ERRORS, CODEC],
    ),
    layer(
      "contract-imports-codec-and-errors",
      "The driver contract speaks bytes: it builds on the codecs and errors only.",
      anyOf([CONTRACT]),
      [ERRORS, CODEC, CONTRACT],
    ),
    layer(
      "shared-driver-helpers-import-the-contract",
      "drivers/shared/ serves every driver, so it imports no driver.",
      "^src/drivers/shared/",
      [ERRORS, CODEC, CONTRACT, "src/drivers/shared/"],
    ),
    layer(
      "driver-imports-contract-codec-errors-shared",
      "A driver implements the contract: never the core, an extension, a face, the conformance " +
        "suite, or another driver's folder. Only the remote driver speaks a wire format.",
      "^src/drivers/(?!shared/|remote/)([^/]+)/",
      [ERRORS, CODEC, CONTRACT, "src/drivers/shared/", "src/drivers/$1/"],
    ),
    layer(
      "remote-driver-imports-contract-codec-errors-shared-wire",
      "The remote driver is a driver that also speaks the wire formats the server speaks.",
      "^src/drivers/remote/",
      [ERRORS, CODEC, CONTRACT, WIRE, "src/drivers/shared/", "src/drivers/remote/"],
    ),
    layer(
      "wire-imports-codec-contract-errors",
      "Wire formats are shared by the remote driver and the server: neither may be below them.",
      anyOf([WIRE]),
      [ERRORS, CODEC, CONTRACT, WIRE],
    ),
    layer(
      "core-imports-codec-contract-errors",
      "The core names no driver, no extension and no face: drivers are handed to it.",
      anyOf([CORE]),
      [ERRORS, CODEC, CONTRACT, CORE],
    ),
    ...EXTENSIONS.map((name) =>
      layer(
        `extension-${name}-imports-core-codec-contract-errors`,
        `The ${name} extension is built on the core, never on a driver, and under every face.`,
        anyOf([folder(name)]),
        [
          ERRORS,
          CODEC,
          CONTRACT,
          CORE,
          ...[name, ...(EXTENSION_MAY_IMPORT[name] ?? [])].map(folder),
        ],
      ),
    ),
    {
      name: "extension-imports-contract-types-only",
      comment: "Extensions may name the contract's types, but run no contract code themselves.",
      severity: "error",
      from: { path: anyOf(EXTENSIONS.map(folder)) },
      to: { path: anyOf([CONTRACT]), dependencyTypesNot: ["type-only"] },
    },
    ...FACES.map((name) =>
      layer(
        `face-${name}-imports-only-what-is-below-it`,
        `The ${name} face imports the layers below the faces (never a driver: only the entry ` +
          `points pick drivers), openKv from open.ts, backup and restore from backup.ts, and ` +
          `the faces it builds on: ` +
          `${FACE_MAY_IMPORT[name].join(", ") || "none"}.`,
        anyOf([folder(name)]),
        [
          ...BELOW_FACES,
          "src/open\\.ts$",
          "src/backup\\.ts$",
          ...[name, ...FACE_MAY_IMPORT[name]].map(folder),
        ],
      ),
    ),
    {
      name: "react-names-the-client-store-contract-only",
      comment:
        "The hooks tell a client store by its contract (offline/types.ts, types only), so they " +
        "never load the client store's code.",
      severity: "error",
      from: { path: "^src/react" },
      to: {
        path: "^src/offline/",
        pathNot: "^src/offline/types\\.ts$",
      },
    },
    {
      name: "react-imports-offline-types-only",
      comment: "The client store's contract is named in types only.",
      severity: "error",
      from: { path: "^src/react" },
      to: { path: "^src/offline/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "faces-and-extensions-use-the-core-surface",
      comment:
        "Faces and extensions reach the core through src/core/surface.ts (coreOf and its types), " +
        "not through core/database.ts.",
      severity: "error",
      from: { path: anyOf([...FACES, ...EXTENSIONS].map(folder)), pathNot: ENTRY_POINTS },
      to: { path: "^src/core/database\\.ts$" },
    },
    layer(
      "conformance-suite-imports-public-entry-points",
      "cellar/testing runs against what users get: the public entry points, nothing internal.",
      "^src/testing/",
      ["src/testing/", "src/(index|client|api)\\.ts$", "src/server/index\\.ts$"],
    ),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Co-located tests open databases the way users do; they are not part of the layering.
    exclude: { path: "\\.test\\.ts$" },
    // `import type` counts: a type import points an arrow too.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      // The condition tsconfig.json resolves `#v8` and `#crypto` with.
      conditionNames: ["cellar-source", "import", "types", "node", "default"],
      extensions: [".ts", ".tsx", ".js"],
    },
  },
};
