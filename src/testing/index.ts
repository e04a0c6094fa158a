/**
 * The Kv conformance suite (`cellar/testing`): the behaviours every implementation must show,
 * whatever stores the bytes, grouped by the driver contract's capabilities. A driver's test file
 * calls `describeKvConformance` with a target; it needs vitest.
 */
import { describe } from "vitest";
import { atomicSuite } from "./atomic.js";
import { badInputSuite } from "./bad-input.js";
import type { KvCapability, KvTarget } from "./context.js";
import { coreSuite } from "./core.js";
import { eventsSuite } from "./events.js";
import { indexSuite } from "./indexes.js";
import { listSuite } from "./list.js";
import { lockSuite } from "./locks.js";
import { metadataSuite } from "./metadata.js";
import { namespaceSuite } from "./namespace.js";
import { queueSuite } from "./queue.js";
import { searchSuite } from "./search.js";
import { transactionSuite } from "./transaction.js";
import { ttlSuite } from "./ttl.js";
import { watchSuite } from "./watch.js";
import { whereSuite } from "./where.js";

export type { KvCapability, KvTarget } from "./context.js";
export { collect, manualClock } from "./context.js";

/**
 * Registers the conformance suite for one implementation of the Kv contract, a `describe` block
 * per capability: `storage` (every driver), `changes` (watches and the change feed) and `queues`.
 * A capability named in `target.skip` is reported as skipped, never silently left out.
 *
 * @example
 * // my-driver.test.ts, run by vitest
 * import { openKv } from "cellar";
 * import { describeKvConformance } from "cellar/testing";
 * describeKvConformance({ name: "my driver", open: (options) => openKv(undefined, { ...options, driver: myDriver() }) });
 */
export function describeKvConformance(target: KvTarget): void {
  const skipped = (capability: KvCapability) => target.skip?.includes(capability) === true;
  describe(`Kv conformance: ${target.name}`, () => {
    describe.skipIf(skipped("storage"))("storage", () => {
      coreSuite(target);
      listSuite(target);
      atomicSuite(target);
      transactionSuite(target);
      ttlSuite(target);
      metadataSuite(target);
      namespaceSuite(target);
      badInputSuite(target);
      whereSuite(target);
      lockSuite(target);
    });
    describe.skipIf(skipped("changes"))("changes", () => {
      watchSuite(target);
      eventsSuite(target);
    });
    describe.skipIf(skipped("queues"))("queues", () => queueSuite(target));
    describe.skipIf(skipped("indexes"))("indexes", () => indexSuite(target));
    describe.skipIf(skipped("search"))("search", () => searchSuite(target));
  });
}
