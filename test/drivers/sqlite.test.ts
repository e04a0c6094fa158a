import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { openKv } from "../../src/index.js";
import { describeKvConformance } from "../../src/testing/index.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
let current = "";

describeKvConformance({
  name: "sqlite",
  open: (options) => {
    current = join(dir, `db-${n++}.db`);
    return openKv(current, options);
  },
  reopen: (options) => openKv(current, options),
});
