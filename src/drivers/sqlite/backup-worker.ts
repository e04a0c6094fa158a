/**
 * SQLite's online backup of a database file in one step, on a read-only connection of its own in
 * a worker thread.
 *
 * One step copies every page inside one read transaction: in WAL mode that is a snapshot as of
 * one commit, which writers — of this process or any other — never wait for and never restart,
 * and the event loop goes on meanwhile. (A backup in many steps would restart whenever another
 * connection commits, so under steady writes it might never end; on the writers' own connection
 * it would make every commit also write the pages it changes into the copy.)
 */
import { statSync } from "node:fs";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** The worker: CommonJS, given the path of better-sqlite3 to load. */
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const { source, target } = workerData;
const failed = (error) => parentPort.postMessage({ ok: false, message: error.message, code: error.code });
let db;
try {
  db = new Database(source, { readonly: true, fileMustExist: true, timeout: 5000 });
} catch (error) {
  failed(error);
}
if (db) {
  db.backup(target, { progress: () => 0x7fffffff }).then(
    () => { db.close(); parentPort.postMessage({ ok: true }); },
    (error) => { db.close(); failed(error); },
  );
}
`;

/** How often the copy's size is reported to `onProgress`, in ms. */
const PROGRESS_INTERVAL = 200;

/**
 * Copies the database file `source` into the new file `temp`; `onProgress` hears the bytes
 * written so far against the source file's size, as the copy grows.
 *
 * @example
 * await copyInWorker("data/app.db", "backups/.app.db.partial", (done, total) => {});
 */
export function copyInWorker(
  source: string,
  temp: string,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const module = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER, { eval: true, workerData: { module, source, target: temp } });
  const total = statSync(source).size;
  const timer = onProgress
    ? setInterval(() => onProgress(Math.min(total, sizeOf(temp)), total), PROGRESS_INTERVAL)
    : null;
  return new Promise<void>((resolve, reject) => {
    worker.once("message", (reply: { ok: boolean; message?: string; code?: string }) => {
      if (reply.ok) {
        onProgress?.(total, total);
        resolve();
      } else reject(Object.assign(new Error(reply.message), { code: reply.code }));
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the backup's worker stopped (exit ${code})`)));
  }).finally(() => {
    if (timer) clearInterval(timer);
    void worker.terminate();
  });
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
