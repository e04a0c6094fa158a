/**
 * The driver protocol's HTTP routes (`wire/protocol.ts`): `POST /api/driver/<op>` for each call of
 * `driver-calls.ts` (`GET /api/driver/info` too), and the change feed as Server-Sent Events.
 * The driver socket (`../driver-socket.ts`) runs the same calls.
 */
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { assertVersionstamp, NEWEST_VERSIONSTAMP } from "../../codec/versionstamp.js";
import type { KvCore } from "../../core/surface.js";
import { KvError } from "../../errors.js";
import { requireAccess, type ServerEnv } from "../../http/auth.js";
import type { StreamRegistry } from "../../http/streams.js";
import { b64, changeToWire, DRIVER_OPS, type DriverOp } from "../../wire/protocol.js";
import { type DriverCall, scopeOf, visibleChanges } from "./driver-calls.js";

async function readJson(c: {
  req: { json(): Promise<unknown> };
}): Promise<Record<string, unknown>> {
  const body = await c.req.json();
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new KvError("INVALID_REQUEST", "the body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** The driver protocol's routes (`/api/driver/*`) over `calls`, as a sub-app mounted at the root. */
export function driverRoutes(
  core: KvCore,
  calls: Readonly<Record<DriverOp, DriverCall>>,
  options: {
    otherNamespaces: boolean;
    streams: StreamRegistry;
    pingInterval: number;
  },
): Hono<ServerEnv> {
  const app = new Hono<ServerEnv>();
  const scopeFor = (scope: ServerEnv["Variables"]["scope"]) =>
    scopeOf(scope, options.otherNamespaces);

  app.get("/api/driver/info", async (c) =>
    c.json((await calls.info.run(c.get("scope"), {})) as object),
  );
  for (const op of DRIVER_OPS) {
    if (op === "info") continue;
    const call = calls[op];
    app.post(`/api/driver/${op}`, async (c) => {
      if (call.access) requireAccess(c, call.access);
      return c.json((await call.run(c.get("scope"), await readJson(c))) as object);
    });
  }

  /** Change events as SSE (`change`, id = versionstamp; `reset` when the log was pruned past `after`). */
  app.get("/api/driver/changes/stream", (c) => {
    requireAccess(c, "read");
    const scope = c.get("scope");
    const resume = c.req.query("after") ?? c.req.header("last-event-id");
    if (resume !== undefined) assertVersionstamp(resume);
    let stop = () => {};
    const release = options.streams.add(() => stop());
    return streamSSE(c, async (out) => {
      let after = resume ?? (await core.changes(NEWEST_VERSIONSTAMP, 0)).head;
      let dirty = true;
      let wake: (() => void) | null = null;
      let ended = false;
      const end = () => {
        ended = true;
        wake?.();
      };
      stop = () => {
        end();
        out.abort();
      };
      const visible = scopeFor(scope);
      const unsubscribe = core.onChange((change) => {
        for (const queue of change.queues ?? []) {
          if (visible.covers(queue))
            void out.writeSSE({ event: "queue", data: b64(queue) }).catch(end);
        }
        if (change.keys.length === 0) return;
        dirty = true;
        wake?.();
      });
      const ping = setInterval(() => void out.write(": ping\n\n").catch(end), options.pingInterval);
      out.onAbort(end);
      try {
        await out.writeSSE({ event: "ready", id: after, data: JSON.stringify({ head: after }) });
        while (!ended) {
          if (!dirty) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = null;
            continue;
          }
          dirty = false;
          const page = await visibleChanges(core, visible, after, 100);
          if (page.truncated) {
            after = page.head;
            await out.writeSSE({
              event: "reset",
              id: after,
              data: JSON.stringify({ head: after }),
            });
            continue;
          }
          for (const change of page.changes) {
            await out.writeSSE({
              event: "change",
              id: change.versionstamp,
              data: JSON.stringify(changeToWire(change)),
            });
          }
          if (page.position > after) after = page.position;
          if (page.changes.length === 100) dirty = true;
        }
      } finally {
        clearInterval(ping);
        unsubscribe();
        release();
      }
    });
  });

  return app;
}
