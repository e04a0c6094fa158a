/**
 * A SQLite file on a disk that fills up: the write that does not fit is refused with
 * `STORAGE_ERROR` naming the file, everything acknowledged stays readable (also after reopening),
 * and once space is freed the same open database writes again. Over HTTP the refusal is a 507.
 *
 * Each test mounts its own small tmpfs, so the disk really fills; tests run as root here.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KvError, type KvKey, openKv } from "../../src/index.js";
import { startServer } from "../../src/server/index.js";
import { canMount, mountTmpfs, remount, unmountAll } from "./tmpfs.js";

afterAll(unmountAll);

if (!canMount)
  console.warn("faults-sqlite: skipped, `mount -t tmpfs` is refused here (needs root)");

/** A value of a few KB, so a 1 MB disk fills within a few hundred writes. */
const BLOB = "x".repeat(3000);
/** The filler file's size: freeing it leaves room for many more writes. */
const FILLER = 256 * 1024;

/** Writes `["k", i]` one after another until a write is refused; returns the acknowledged ones. */
async function fillDisk(set: (key: KvKey) => Promise<unknown>): Promise<{
  acked: number[];
  refusal: unknown;
}> {
  const acked: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    try {
      await set(["k", i]);
      acked.push(i);
    } catch (refusal) {
      return { acked, refusal };
    }
  }
  throw new Error("the disk never filled");
}

describe.skipIf(!canMount)("SQLite on a full disk", () => {
  it("refuses the write that does not fit, loses nothing acknowledged, writes again once space is freed", async () => {
    const dir = mountTmpfs("size=1m")!;
    const path = join(dir, "full.db");
    const filler = join(dir, "filler");
    writeFileSync(filler, Buffer.alloc(FILLER, 1));
    const kv = await openKv(path, { sweepInterval: 0 });

    const { acked, refusal } = await fillDisk((key) => kv.set(key, BLOB));
    expect(acked.length).toBeGreaterThan(0);
    expect(refusal).toBeInstanceOf(KvError);
    expect(refusal).toMatchObject({ code: "STORAGE_ERROR" });
    expect((refusal as Error).message).toMatch(/disk is full/);
    expect((refusal as Error).message).toContain(path);

    // A group of concurrent writes on the full disk: each is refused as a whole, none is half
    // applied, and every one refused is absent.
    const group = await Promise.allSettled(
      Array.from({ length: 20 }, (_, j) =>
        kv.atomic().set(["g", j, "a"], BLOB).set(["g", j, "b"], BLOB).commit(),
      ),
    );
    for (const [j, outcome] of group.entries()) {
      const [a, b] = await kv.getMany([
        ["g", j, "a"],
        ["g", j, "b"],
      ]);
      if (outcome.status === "rejected") {
        expect(outcome.reason).toMatchObject({ code: "STORAGE_ERROR" });
        expect([a.value, b.value]).toEqual([null, null]);
      } else {
        expect([a.value, b.value]).toEqual([BLOB, BLOB]);
      }
    }
    expect(group.some((o) => o.status === "rejected")).toBe(true);

    // Still readable, every acknowledged write there.
    for (const i of acked) expect((await kv.get(["k", i])).value).toBe(BLOB);

    rmSync(filler);
    const after = await kv.set(["after"], BLOB);
    expect(after.ok).toBe(true);
    await kv.set(["k", "last"], "small");
    await kv.close();

    const reopened = await openKv(path, { sweepInterval: 0 });
    try {
      const entries = await reopened.getMany(acked.map((i) => ["k", i]));
      expect(entries.every((e) => e.value === BLOB)).toBe(true);
      expect((await reopened.get(["after"])).value).toBe(BLOB);
      expect((await reopened.get(["k", "last"])).value).toBe("small");
      expect((await reopened.get(["k", acked.length])).value).toBe(null);
    } finally {
      await reopened.close();
    }
  });

  it("answers 507 with the STORAGE_ERROR body over HTTP, and keeps serving", async () => {
    const dir = mountTmpfs("size=1m")!;
    const path = join(dir, "served.db");
    const server = await startServer({ db: path, port: 0, openOptions: { sweepInterval: 0 } });
    try {
      const put = (key: KvKey) =>
        fetch(`${server.url}/api/keys/${key.join("/")}`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ value: BLOB }),
        });
      let refused: Response | undefined;
      const acked: number[] = [];
      for (let i = 0; i < 10_000 && !refused; i++) {
        const res = await put(["k", `n${i}`]);
        if (res.ok) acked.push(i);
        else refused = res;
      }
      expect(refused?.status).toBe(507);
      const body = (await refused!.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("STORAGE_ERROR");
      expect(body.error.message).toMatch(/disk is full/);

      const read = await fetch(`${server.url}/api/keys/k/n${acked.at(-1)}`);
      expect(read.status).toBe(200);
      expect(((await read.json()) as { value: unknown }).value).toBe(BLOB);

      remount(dir, "remount,size=8m");
      expect((await put(["k", "after"])).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
