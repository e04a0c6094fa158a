import { afterAll, describe, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { createApp, type RunningServer, startServer } from "../../src/server/index.js";

const PAGE = "http://127.0.0.1:5173";

function preflight(origin: string, method = "POST") {
  return {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": method,
      "access-control-request-headers": "authorization, content-type, x-cellar-namespace",
    },
  };
}

describe("CORS", () => {
  it("answers a preflight from a configured origin, allowing the client's headers", async () => {
    const { app } = createApp(await openKv(), { cors: [PAGE] });
    const res = await app.request("/api/driver/read", preflight(PAGE));
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(PAGE);
    const allowed = res.headers.get("access-control-allow-headers")?.toLowerCase() ?? "";
    for (const header of ["authorization", "content-type", "last-event-id", "x-cellar-namespace"])
      expect(allowed).toContain(header);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
  });

  it("allows no other origin", async () => {
    const { app } = createApp(await openKv(), { cors: [PAGE] });
    const res = await app.request("/api/driver/read", preflight("http://evil.example"));
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const get = await app.request("/api/health", { headers: { origin: "http://evil.example" } });
    expect(get.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("is off by default", async () => {
    const { app } = createApp(await openKv());
    const res = await app.request("/api/driver/read", preflight(PAGE));
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.status).not.toBe(204);
  });

  it('allows any origin with "*"', async () => {
    const { app } = createApp(await openKv(), { cors: ["*"] });
    const res = await app.request("/api/driver/read", preflight("http://any.example"));
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });

  describe("over a real port", () => {
    let server: RunningServer;
    afterAll(() => server?.close());

    it("adds the headers to the reads the fast path would answer", async () => {
      server = await startServer({ db: ":memory:", port: 0, cors: [PAGE] });
      await fetch(`${server.url}/api/keys/greeting`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ value: "hi" }),
      });
      const res = await fetch(`${server.url}/api/keys/greeting`, { headers: { origin: PAGE } });
      expect(res.status).toBe(200);
      expect(res.headers.get("access-control-allow-origin")).toBe(PAGE);
      const pre = await fetch(`${server.url}/api/driver/read`, preflight(PAGE));
      expect(pre.status).toBe(204);
      expect(pre.headers.get("access-control-allow-origin")).toBe(PAGE);
    });
  });
});
