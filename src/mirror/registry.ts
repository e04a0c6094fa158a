/**
 * The open mirrors of each database, so the metrics layer (`cellar/observe`) can report them
 * whenever it is scraped, whichever of the two was set up first.
 */
import type { Kv } from "../core/kv.js";
import { coreOf, type KvCore } from "../core/surface.js";
import type { MirrorStatus } from "./status.js";

/** What the metrics layer reads of a mirror. */
export interface MirrorReport {
  status(): MirrorStatus;
}

const open = new WeakMap<KvCore, Set<MirrorReport>>();

/** Adds `mirror` to the mirrors of `kv`'s database; returns the function that removes it. */
export function registerMirror(kv: Kv, mirror: MirrorReport): () => void {
  const { core } = coreOf(kv);
  let mirrors = open.get(core);
  if (!mirrors) {
    mirrors = new Set();
    open.set(core, mirrors);
  }
  mirrors.add(mirror);
  return () => mirrors.delete(mirror);
}

/**
 * The statuses of the open mirrors of `kv`'s database.
 *
 * @example
 * for (const { table, lag } of mirrorStatuses(kv)) console.log(table, lag.versionstamps);
 */
export function mirrorStatuses(kv: Kv): MirrorStatus[] {
  return [...(open.get(coreOf(kv).core) ?? [])].map((mirror) => mirror.status());
}
