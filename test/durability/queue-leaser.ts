/**
 * Leases messages of the queue "work" of the SQLite file in argv[2] (durability full) and prints
 * each lease's id once its dequeue has resolved, then waits to be killed.
 */
import { writeSync } from "node:fs";
import { openKv } from "../../src/index.js";

const kv = await openKv(process.argv[2]!, { sweepInterval: 0 });
for (const message of await kv.queue("work").dequeueMany(Number(process.argv[3]))) {
  writeSync(1, `${message.id}\n`);
}
writeSync(1, "leased\n");
setInterval(() => {}, 1000);
