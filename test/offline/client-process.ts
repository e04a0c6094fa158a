/**
 * A client store in a process of its own, for test/offline/processes.test.ts: opens
 * `createClientKv({ url, storage })` from argv, prints one JSON line per view change
 * (`{ event, key, value, pending }`) and per status change (`{ state, pending }`), and runs the
 * JSON commands it reads on stdin: `{ op: "set", key, value }` (answers `{ written: id }` once
 * saved in the outbox).
 */
import { createInterface } from "node:readline";
import { REST } from "../../src/api.js";
import { createClientKv } from "../../src/index.js";

const [url, storage] = process.argv.slice(2);
const out = (line: unknown) => process.stdout.write(`${JSON.stringify(line)}\n`);
const kv = await createClientKv({
  url: url!,
  storage: storage!,
  reconnectDelay: 20,
  maxReconnectDelay: 200,
});
kv.subscribe([REST], (event) =>
  out({
    event: event.cause,
    key: event.key,
    value: event.entry.value,
    pending: event.entry.pending,
  }),
);
kv.onStatus((status) => out({ state: status.state, pending: status.pending }));
out({ opened: true, value: kv.peek(["shared"]).value, pending: kv.status.pending });
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { op: string; key: string[]; value: unknown };
  if (command.op === "set") {
    const write = await kv.set(command.key, command.value);
    out({ written: write.id });
  }
}
