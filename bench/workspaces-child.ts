/**
 * Child process of the workspaces benchmark: one sync server, `workspaces-child.ts <kind> <db>`,
 * where kind is `cellar` (Cellar's server, the document persisted in the SQLite file `db` with
 * durability full, or in memory for `:memory:`) or `peer` (@y/websocket-server 0.1.1, documents
 * in memory). It prints `url <url>`, then answers lines on stdin: `mem` → `mem <heapUsed>
 * <rss> <cpu ms>` after a full garbage collection; `quit` closes the server and exits.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { setupWSConnection } from "@y/websocket-server/utils";
import { WebSocketServer } from "ws";
import { startServer } from "../src/server/serve.js";
import { ytext } from "../src/workspace/columns.js";
import { defineWorkspace } from "../src/workspace/define.js";

/** Workspace ids the Cellar server defines: `w0` … (rounds and the memory figure take fresh ones). */
export const WORKSPACES = 400;

const [kind, db] = process.argv.slice(2);

async function serve(): Promise<{ url: string; close: () => Promise<void> }> {
  if (kind === "cellar") {
    const workspaces = Array.from({ length: WORKSPACES }, (_, i) =>
      defineWorkspace({ id: `w${i}`, kv: { notes: ytext() } }),
    );
    const server = await startServer({
      db: db ?? ":memory:",
      port: 0,
      workspaces,
      workspaceIdleMs: 3_600_000,
      maxStreams: 100_000,
      openOptions: { durability: "full" },
    });
    return { url: server.url, close: () => server.close() };
  }
  const sockets = new WebSocketServer({ noServer: true });
  sockets.on("connection", setupWSConnection);
  const server = createServer((_req, res) => res.end("okay"));
  server.on("upgrade", (req, socket, head) => {
    sockets.handleUpgrade(req, socket, head, (ws) => sockets.emit("connection", ws, req));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const client of sockets.clients) client.terminate();
        server.close(() => resolve());
      }),
  };
}

const server = await serve();
process.stdout.write(`url ${server.url}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "mem") {
    (globalThis as { gc?: () => void }).gc?.();
    const { heapUsed, rss } = process.memoryUsage();
    const { user, system } = process.cpuUsage();
    process.stdout.write(`mem ${heapUsed} ${rss} ${Math.round((user + system) / 1000)}\n`);
  } else if (line === "quit") {
    await server.close();
    process.exit(0);
  }
}
