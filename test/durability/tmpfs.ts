/**
 * Small tmpfs mounts for tests that need a disk that fills up or refuses writes. Mounting needs
 * root, which these tests have here; elsewhere `canMount` is false and they skip, saying why.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const mounted: string[] = [];

/** A fresh tmpfs with mount's `options` (say `size=1m` or `ro`); null if mount is refused. */
export function mountTmpfs(options: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), "cellar-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir], { stdio: "pipe" });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  mounted.push(dir);
  return dir;
}

/** Changes a mount's options in place (say `remount,size=8m` or `remount,ro`). */
export function remount(dir: string, options: string): void {
  execFileSync("mount", ["-o", options, dir], { stdio: "pipe" });
}

/** Unmounts and removes every tmpfs this module mounted; for afterAll. */
export function unmountAll(): void {
  for (const dir of mounted.splice(0)) {
    execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether this process may mount a tmpfs, found by mounting a tiny one. */
export const canMount = mountTmpfs("size=64k") !== null;
