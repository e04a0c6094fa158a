/**
 * The data commands of `cellar`, beside `serve`: reads and writes, watch, atomic, queues,
 * export and import, tokens. Each opens the database `--db` names (a SQLite file, a PostgreSQL
 * URL or a server URL), does one thing and exits: 0 done, 1 failure, 2 usage error, 3 not found.
 */
import type { Command } from "commander";
import { registerAtomicCommand } from "./atomic.js";
import { registerDataCommands } from "./data.js";
import { registerQueueCommands } from "./queue.js";
import { registerTokenCommands } from "./tokens.js";
import { registerTransferCommands } from "./transfer.js";
import { registerWatchCommand } from "./watch.js";

export function registerCommands(program: Command): void {
  registerDataCommands(program);
  registerWatchCommand(program);
  registerAtomicCommand(program);
  registerQueueCommands(program);
  registerTransferCommands(program);
  registerTokenCommands(program);
}
