/**
 * A queue listener outlives storage that fails for a while: on a full disk its dequeues (which
 * are writes: they lease) are refused with STORAGE_ERROR, it keeps listening, and once space is
 * freed it delivers what was waiting. A key watch keeps answering throughout.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { openKv } from "../../src/index.js";
import { canMount, mountTmpfs, unmountAll } from "./tmpfs.js";

afterAll(unmountAll);

describe.skipIf(!canMount)("listeners through a storage outage", () => {
  it("keeps a queue listener alive on a full disk and delivers once space is freed", async () => {
    const dir = mountTmpfs("size=1m")!;
    const kv = await openKv(join(dir, "outage.db"), { sweepInterval: 0 });
    for (let i = 0; i < 5; i++) await kv.enqueue({ job: i });
    const watch = kv.watch([["flag"]]).getReader();
    expect((await watch.read()).value?.[0].value).toBeNull();

    // Fill the disk to the last byte with a file of our own, so every commit is refused.
    const filler = join(dir, "filler");
    let size = 1024 * 1024;
    for (;;) {
      try {
        writeFileSync(filler, Buffer.alloc(size, 1));
        break;
      } catch {
        size -= 4096;
      }
    }
    await expect(kv.set(["probe"], "x".repeat(20_000))).rejects.toMatchObject({
      code: "STORAGE_ERROR",
    });

    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const delivered: unknown[] = [];
    const abort = new AbortController();
    const listening = kv.listenQueue((value) => void delivered.push(value), {
      signal: abort.signal,
    });
    try {
      await vi.waitFor(() => expect(warn).toHaveBeenCalled(), { timeout: 5000 });
      expect(String(warn.mock.calls[0]?.[0])).toMatch(/dequeue failed, retrying/);
      expect(delivered).toEqual([]);

      rmSync(filler);
      await vi.waitFor(() => expect(delivered).toHaveLength(5), { timeout: 10_000 });
      await kv.set(["flag"], true);
      expect((await watch.read()).value?.[0].value).toBe(true);
    } finally {
      abort.abort();
      await listening;
      warn.mockRestore();
      await watch.cancel();
      await kv.close();
    }
  });
});
