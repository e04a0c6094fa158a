/**
 * Child process of the mirror crash test: `crash-child.ts <db-path> <postgres-url> write|resume`.
 *
 * - `write`: opens the SQLite file, mirrors `["items"]` to the table `items`, and writes until it
 *   is killed (sets, deletes, two-key atomic commits), printing `wrote <n>` now and then.
 * - `resume`: opens the file again, lets the mirror catch up, prints its status as JSON, exits.
 */
import { writeSync } from "node:fs";
import { mirror, openKv } from "../../src/index.js";

const [path, to, mode] = process.argv.slice(2);
if (!path || !to || (mode !== "write" && mode !== "resume")) {
  process.stderr.write("usage: crash-child.ts <db-path> <postgres-url> write|resume\n");
  process.exit(2);
}

// A killed process loses nothing acknowledged in WAL mode with `normal`: only the OS could.
const kv = await openKv(path, { durability: "normal" });
const items = mirror(kv, { prefix: ["items"], to, table: "items", batchSize: 20 });

if (mode === "resume") {
  await items.flush({ timeoutMs: 20_000 });
  writeSync(1, `${JSON.stringify(items.status())}\n`);
  await items.close();
  await kv.close();
} else {
  for (let i = 0; ; i++) {
    const key = ["items", i % 300];
    if (i % 7 === 3) await kv.delete(key);
    else if (i % 11 === 5)
      await kv
        .atomic()
        .set(key, { i })
        .set(["items", "pair", i % 13], { i })
        .commit();
    else await kv.set(key, { i, at: new Date() });
    if (i % 100 === 0) writeSync(1, `wrote ${i}\n`);
  }
}
