/**
 * A queue consumer process: listens on the queue of the SQLite file in argv[2] and prints the
 * id of every message it handled, after handling it.
 */
import { writeSync } from "node:fs";
import { openKv } from "../../src/index.js";

const kv = await openKv(process.argv[2]!);
process.on("SIGTERM", () => void kv.close().then(() => process.exit(0)));
writeSync(1, "ready\n");
await kv.queue("work").listen(
  async (_value, message) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    writeSync(1, `${message.id}\n`);
  },
  { concurrency: 8 },
);
