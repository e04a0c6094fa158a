/** The conformance suite through `cellar/client`: the remote driver over `fetch`, not undici. */
import { openKv } from "../../src/client.js";
import { describeKvConformance } from "../../src/testing/index.js";
import { remoteTarget } from "../remote/spawn.js";

describeKvConformance(
  remoteTarget("cellar/client remote (fetch against a server process)", openKv),
);
