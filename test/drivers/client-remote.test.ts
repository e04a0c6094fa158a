/** The conformance suite through `cellar/client`: the remote driver over `fetch`, not undici. */
import { afterAll, beforeAll } from "vitest";
import { openKv } from "../../src/client.js";
import { assertPositiveInteger, resolveLimits } from "../../src/core/limits.js";
import { describeKvConformance } from "../../src/testing/index.js";
import { startSpawner } from "../remote/spawn.js";

let spawner: Awaited<ReturnType<typeof startSpawner>>;
beforeAll(async () => {
  spawner = await startSpawner();
});
afterAll(() => spawner.stop());

describeKvConformance({
  name: "cellar/client remote (fetch against a server process)",
  open: async (options = {}) => {
    const { limits, history, sweepInterval } = options;
    // Refuse bad options here as openKv would, before the server process is asked for them.
    resolveLimits(limits);
    assertPositiveInteger("history.depth", history?.depth, 1000);
    const url = await spawner.spawnServer({ limits, history, sweepInterval });
    return openKv(url, options);
  },
});
