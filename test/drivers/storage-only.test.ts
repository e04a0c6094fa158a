/**
 * A driver with storage and a change feed but no queues, as a new driver (say, in a browser)
 * may start: the conformance suite runs its storage and change capabilities and skips queues,
 * and the core refuses queue calls with `UNSUPPORTED` instead of failing inside the driver.
 */
import { expect, it } from "vitest";
import type { DriverOptions, KvChangeFeed, KvDriver, KvStorage } from "../../src/contract/index.js";
import { memoryDriver } from "../../src/drivers/memory/index.js";
import { openKv } from "../../src/index.js";
import { describeKvConformance } from "../../src/testing/index.js";

/** The memory driver seen through the storage and change-feed contracts only. */
function storageOnly(options: DriverOptions = {}): KvDriver {
  const full = memoryDriver(options);
  const driver: KvStorage & KvChangeFeed = {
    snapshotRead: (ranges, options) => full.snapshotRead(ranges, options),
    count: (range, options) => full.count(range, options),
    atomicWrite: (write) => full.atomicWrite(write),
    history: (key, options) => full.history(key, options),
    deleteExpired: (now, limit) => full.deleteExpired(now, limit),
    purge: (prefix, now) => full.purge(prefix, now),
    close: () => full.close(),
    onChange: (listener) => full.onChange(listener),
    readChanges: (after, limit) => full.readChanges(after, limit),
  };
  return driver;
}

describeKvConformance({
  name: "storage and changes only",
  open: (options) => openKv(undefined, { ...options, driver: storageOnly }),
  skip: ["queues", "search"],
});

it("refuses queue calls with UNSUPPORTED and writes nothing", async () => {
  const kv = await openKv(undefined, { driver: storageOnly() });
  await expect(kv.enqueue("job")).rejects.toMatchObject({ code: "UNSUPPORTED" });
  await expect(kv.atomic().set(["a"], 1).enqueue("job").commit()).rejects.toMatchObject({
    code: "UNSUPPORTED",
  });
  expect((await kv.get(["a"])).value).toBeNull();
  expect(() => kv.queue("jobs")).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
  await kv.close();
});
