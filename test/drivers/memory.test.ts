import { openKv } from "../../src/index.js";
import { describeKvConformance } from "../../src/testing/index.js";

describeKvConformance({ name: "memory", open: (options) => openKv(":memory:", options) });
