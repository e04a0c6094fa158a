import { openKv } from "../../src/index.js";
import { describeKvConformance } from "../conformance/index.js";

describeKvConformance({ name: "memory", open: (options) => openKv(":memory:", options) });
