/**
 * `cellar serve --workspaces <module>`: the workspace definitions a module exports, each export
 * a definition (`defineWorkspace`) or an array of them. A TypeScript module is loaded through
 * tsx when Node cannot load it itself and tsx is installed.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { AnyWorkspace } from "../workspace/define.js";
import { ConfigError } from "./serve-config.js";

/**
 * Imports `path` and returns the workspace definitions it exports; a `ConfigError` when it
 * cannot be loaded, exports none, or exports two with one id.
 *
 * @example
 * const workspaces = await loadWorkspaces("workspaces.ts");
 */
export async function loadWorkspaces(path: string): Promise<AnyWorkspace[]> {
  const exports = await importModule(path);
  const found = new Map<string, AnyWorkspace>();
  for (const value of Object.values(exports)) {
    for (const candidate of Array.isArray(value) ? value : [value]) {
      if (!isWorkspace(candidate)) continue;
      const known = found.get(candidate.id);
      if (known && known !== candidate) {
        throw new ConfigError(
          `workspaces module ${path} exports two workspaces with the id ${JSON.stringify(candidate.id)}`,
        );
      }
      found.set(candidate.id, candidate);
    }
  }
  if (found.size === 0) {
    throw new ConfigError(
      `workspaces module ${path} exports no workspace definition (made by defineWorkspace from cellar/workspace)`,
    );
  }
  return [...found.values()];
}

async function importModule(path: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(resolve(path)).href;
  try {
    return await import(url);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ERR_UNKNOWN_FILE_EXTENSION" && /\.[cm]?ts$/.test(path)) {
      const tsx = await loadTsx();
      if (tsx) return await importWith(tsx, url, path);
      throw new ConfigError(
        `cannot load workspaces module ${path}: a TypeScript module needs tsx (npm install tsx), or compile it to JavaScript`,
      );
    }
    throw new ConfigError(`cannot load workspaces module ${path}: ${(error as Error).message}`);
  }
}

type Tsx = { register: () => () => Promise<void> };

async function loadTsx(): Promise<Tsx | null> {
  try {
    return (await import("tsx/esm/api" as string)) as Tsx;
  } catch {
    return null;
  }
}

async function importWith(tsx: Tsx, url: string, path: string): Promise<Record<string, unknown>> {
  tsx.register();
  try {
    return await import(url);
  } catch (error) {
    throw new ConfigError(`cannot load workspaces module ${path}: ${(error as Error).message}`);
  }
}

/** What `defineWorkspace` returns: a frozen `{ id, tables, kv, actions }`. */
function isWorkspace(value: unknown): value is AnyWorkspace {
  if (typeof value !== "object" || value === null || !Object.isFrozen(value)) return false;
  const candidate = value as Partial<Record<keyof AnyWorkspace, unknown>>;
  return (
    typeof candidate.id === "string" &&
    typeof candidate.tables === "object" &&
    candidate.tables !== null &&
    typeof candidate.kv === "object" &&
    candidate.kv !== null &&
    (candidate.actions === undefined || typeof candidate.actions === "function")
  );
}
