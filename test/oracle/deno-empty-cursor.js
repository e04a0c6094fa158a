// A Deno program (run by `empty-cursor.test.ts` with `deno run --unstable-kv`): runs the empty
// cursor scenario on an in-memory Deno KV and prints what it saw as one line of JSON.
import { observeEmptyCursor } from "./empty-cursor-scenario.ts";

const kv = await Deno.openKv(":memory:");
console.log(JSON.stringify(await observeEmptyCursor(kv)));
kv.close();
