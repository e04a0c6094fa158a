/**
 * A subscriber in a process of its own, for the latency of events across processes:
 *
 *   events-child.ts subscriber <file>   `openKv(file)`, subscribed to `["lat", REST]`
 *
 * It sends "ready" once subscribed; on "report" it sends the receipt time of each event by key
 * number, on the clock both processes share (`performance.timeOrigin + performance.now()`);
 * on "stop" it closes and exits.
 */
import { fileURLToPath } from "node:url";
import { openKv, REST } from "../src/index.js";
import { type Child, forkChild } from "./child.js";

export interface Receipts {
  /** Receipt time by key number (`["lat", i]`). */
  readonly at: Record<number, number>;
}

export const now = () => performance.timeOrigin + performance.now();

export function startSubscriber(file: string): Promise<Child<"ready">> {
  return forkChild<"ready">(fileURLToPath(import.meta.url), ["subscriber", file]);
}

/** Asks a subscriber for its receipts. */
export function receipts(child: Child<"ready">): Promise<Receipts> {
  return new Promise((resolve) => {
    child.process.once("message", (message: Receipts) => resolve(message));
    child.process.send("report");
  });
}

async function subscriber(file: string): Promise<void> {
  const kv = await openKv(file);
  const at: Record<number, number> = {};
  kv.subscribe(["lat", REST], (event) => {
    at[event.key[1] as number] = now();
  });
  process.on("message", async (message) => {
    if (message === "report") process.send!({ at } satisfies Receipts);
    else {
      await kv.close();
      process.exit(0);
    }
  });
  process.once("disconnect", () => process.exit(0));
  process.send!("ready");
}

if (process.argv[2] === "--child" && process.argv[3] === "subscriber") {
  await subscriber(process.argv[4]!);
}
