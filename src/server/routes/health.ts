/** Liveness and readiness, unauthenticated so orchestrators can probe them. */
import { Hono } from "hono";
import type { Kv } from "../../core/kv.js";
import { errorBody } from "../../http/errors.js";

/** The probes, as a sub-app mounted at the root. */
export function healthRoutes(kv: Kv): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", async (c) => {
    try {
      await kv.currentVersionstamp();
      return c.json({ ok: true });
    } catch (error) {
      return c.json(
        errorBody("UNAVAILABLE", `the database is not reachable: ${(error as Error).message}`),
        503,
      );
    }
  });
  return app;
}
