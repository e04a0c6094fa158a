/**
 * The Kv conformance suite: one set of behaviours every implementation must show, whatever
 * stores the bytes. A driver's test file calls `describeKvConformance` with a target.
 */
import { describe } from "vitest";
import { atomicSuite } from "./atomic.js";
import { badInputSuite } from "./bad-input.js";
import type { KvTarget } from "./context.js";
import { coreSuite } from "./core.js";
import { listSuite } from "./list.js";
import { metadataSuite } from "./metadata.js";
import { namespaceSuite } from "./namespace.js";
import { queueSuite } from "./queue.js";
import { transactionSuite } from "./transaction.js";
import { ttlSuite } from "./ttl.js";
import { watchSuite } from "./watch.js";

export type { KvTarget } from "./context.js";

export function describeKvConformance(target: KvTarget): void {
  describe(`Kv conformance: ${target.name}`, () => {
    coreSuite(target);
    listSuite(target);
    atomicSuite(target);
    transactionSuite(target);
    ttlSuite(target);
    metadataSuite(target);
    watchSuite(target);
    namespaceSuite(target);
    queueSuite(target);
    badInputSuite(target);
  });
}
