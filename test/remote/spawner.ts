/**
 * A process that starts real Cellar servers on loopback ports on request, each on its own
 * in-memory database, so every conformance test gets a fresh server without paying a process
 * start. Prints its own URL on stdout; `POST /spawn` answers `{ url }`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type RunningServer, startServer } from "../../src/server/index.js";

const running = new Map<string, RunningServer>();

const control = createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  const options = body ? JSON.parse(body) : {};
  try {
    if (req.url === "/spawn") {
      const server = await startServer({
        db: ":memory:",
        port: 0,
        trustClientClock: true,
        pingInterval: 500,
        ...(options.tokens && { tokens: options.tokens }),
        ...(options.namespaceFrom && { namespaceFrom: options.namespaceFrom }),
        openOptions: {
          ...(options.limits && { limits: options.limits }),
          ...(options.history && { history: options.history }),
          ...(options.changeLog && { changeLog: options.changeLog }),
          ...(options.sweepInterval !== undefined && { sweepInterval: options.sweepInterval }),
        },
      });
      running.set(server.url, server);
      res.end(JSON.stringify({ url: server.url }));
    } else if (req.url === "/stop") {
      await running.get(options.url)?.close();
      running.delete(options.url);
      res.end("{}");
    } else {
      res.statusCode = 404;
      res.end();
    }
  } catch (error) {
    res.statusCode = 500;
    res.end(JSON.stringify({ error: String(error) }));
  }
});

control.listen(0, "127.0.0.1", () => {
  console.log(`http://127.0.0.1:${(control.address() as AddressInfo).port}`);
});
