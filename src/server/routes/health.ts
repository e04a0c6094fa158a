/** Liveness and readiness, unauthenticated so orchestrators can probe them. */
import type { Hono } from "hono";
import type { Kv } from "../../core/kv.js";
import { errorBody } from "../../http/errors.js";

export function healthRoutes(app: Hono, kv: Kv): void {
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
}
