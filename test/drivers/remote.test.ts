import { openKv } from "../../src/index.js";
import { describeKvConformance } from "../../src/testing/index.js";
import { remoteTarget } from "../remote/spawn.js";

describeKvConformance(remoteTarget("remote (HTTP client against a server process)", openKv));
