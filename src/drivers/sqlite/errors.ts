/**
 * SQLite's failures as `KvError`s that name the file and say what is wrong in words, so an
 * operator reading "the disk is full" knows what to do without looking up `SQLITE_FULL`.
 */
import { KvError } from "../../errors.js";

/** SQLite's result code of a failure (`SQLITE_FULL`, `SQLITE_IOERR_WRITE`, …), if it has one. */
export function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/**
 * A failure of the file or the disk beneath it rather than of one write's input: SQLite may
 * have rolled back the whole transaction, so no other write of the group can commit either.
 */
export function isFileFault(error: unknown): boolean {
  const code = sqliteCode(error);
  return (
    code !== undefined &&
    (code === "SQLITE_FULL" ||
      code.startsWith("SQLITE_IOERR") ||
      code.startsWith("SQLITE_CORRUPT") ||
      code === "SQLITE_NOTADB" ||
      code.startsWith("SQLITE_READONLY") ||
      code.startsWith("SQLITE_CANTOPEN"))
  );
}

/** `STORAGE_ERROR` for a failure to `doing` (say, "commit to") the database at `path`. */
export function storageError(cause: unknown, path: string, doing: string): KvError {
  const code = sqliteCode(cause);
  const detail = (cause as Error).message;
  const reason =
    code === "SQLITE_FULL"
      ? `the disk is full (${detail})`
      : code?.startsWith("SQLITE_IOERR")
        ? `I/O error (${code}: ${detail})`
        : code === "SQLITE_NOTADB" || code?.startsWith("SQLITE_CORRUPT")
          ? `the file is not a SQLite database or is corrupt (${detail})`
          : code?.startsWith("SQLITE_READONLY")
            ? `the file is read-only (${detail})`
            : code?.startsWith("SQLITE_CANTOPEN")
              ? `the file cannot be opened (${detail})`
              : detail;
  return new KvError("STORAGE_ERROR", `cannot ${doing} SQLite database ${path}: ${reason}`, {
    cause,
  });
}
