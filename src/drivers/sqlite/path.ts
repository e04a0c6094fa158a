/**
 * Checks a database path before SQLite sees it, and creates its missing folders one level at a
 * time. Node's recursive `mkdir` loops forever where a file system refuses a folder with ENOENT
 * (procfs) and lets a raw EEXIST escape where a parent is a file; SQLite itself only says
 * "unable to open database file". Here each refusal names the path and says what is wrong.
 */
import { accessSync, constants, mkdirSync, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { KvError } from "../../errors.js";

/** Makes `path` ready to open for reading and writing, or throws a `KvError` saying why not. */
export function prepareLocation(path: string): void {
  const absolute = resolve(path);
  const found = nearestExisting(absolute);
  if (found.path === absolute) {
    if (found.stats.isDirectory()) refuse(path, "it is a directory, not a database file");
    if (!found.stats.isFile()) refuse(path, "it is not a regular file");
    assertWritable(path, absolute, "the file");
    return;
  }
  if (!found.stats.isDirectory()) {
    refuse(path, `${found.path} is not a folder, so no file can be created under it`);
  }
  const missing: string[] = [];
  for (let dir = dirname(absolute); dir !== found.path; dir = dirname(dir)) missing.unshift(dir);
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (cause) {
      // Another process may create the same folder at the same moment.
      if (errnoOf(cause) === "EEXIST" && statSync(dir).isDirectory()) continue;
      throw storageFailure(
        path,
        `cannot create its folder ${dir}: ${FOLDER_REFUSALS[errnoOf(cause) ?? ""] ?? "refused"}`,
        cause,
      );
    }
  }
  assertWritable(path, dirname(absolute), "its folder");
}

const FOLDER_REFUSALS: Record<string, string> = {
  // procfs and sysfs answer so for a folder they would never hold.
  ENOENT: "the file system there does not allow new folders",
  EPERM: "the file system there does not allow new folders",
  EACCES: "permission denied",
  EROFS: "the file system is read-only",
  ENOSPC: "the disk is full",
};

/** The path itself or its closest existing ancestor, with what it is. */
function nearestExisting(absolute: string): { path: string; stats: Stats } {
  for (let current = absolute; ; current = dirname(current)) {
    try {
      return { path: current, stats: statSync(current) };
    } catch (cause) {
      const errno = errnoOf(cause);
      // ENOTDIR: some ancestor is a file; keep climbing to name it.
      if ((errno !== "ENOENT" && errno !== "ENOTDIR") || current === dirname(current)) {
        throw storageFailure(absolute, `cannot look up ${current}`, cause);
      }
    }
  }
}

/** Root writes through file permissions, not through read-only mounts or immutable files. */
function assertWritable(path: string, target: string, what: string): void {
  try {
    accessSync(target, constants.R_OK | constants.W_OK);
  } catch (cause) {
    const errno = errnoOf(cause);
    const reason =
      errno === "EROFS"
        ? `${what} is on a read-only file system`
        : errno === "EACCES" || errno === "EPERM"
          ? `${what} is read-only for this process`
          : `${what} cannot be written`;
    throw storageFailure(path, reason, cause);
  }
}

function refuse(path: string, reason: string): never {
  throw new KvError("INVALID_ARGUMENT", `cannot open SQLite database ${path}: ${reason}`);
}

function storageFailure(path: string, reason: string, cause: unknown): KvError {
  const errno = errnoOf(cause);
  return new KvError(
    "STORAGE_ERROR",
    `cannot open SQLite database ${path}: ${reason}${errno ? ` (${errno})` : ""}`,
    { cause },
  );
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}
