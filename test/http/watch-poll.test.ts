/** The prefix long poll catches up in one request, and refuses to wait on a future it cannot reach. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../src/server/serve.js";
import { send, serve } from "./helpers.js";

let server: RunningServer;
beforeAll(async () => {
  server = await serve();
});
afterAll(() => server.close());

const poll = (params: Record<string, string>) =>
  send(server.url, `/api/watch/prefix/poll?${new URLSearchParams(params)}`);

describe("GET /api/watch/prefix/poll", () => {
  it("returns every commit already available, up to its limit, in one answer", async () => {
    const { cursor } = (await poll({ prefix: "feed" })).json;
    const stamps: string[] = [];
    for (let i = 0; i < 5; i++) {
      await server.kv.set(["elsewhere", i], i);
      stamps.push((await server.kv.set(["feed", i], i)).versionstamp);
    }
    const all = await poll({ prefix: "feed", after: cursor, timeout: "0" });
    expect(all.json.changes.map((c: { versionstamp: string }) => c.versionstamp)).toEqual(stamps);
    expect(all.json.cursor).toBe(stamps[4]);

    const some = await poll({ prefix: "feed", after: cursor, timeout: "0", limit: "2" });
    expect(some.json.changes.map((c: { versionstamp: string }) => c.versionstamp)).toEqual(
      stamps.slice(0, 2),
    );
    const rest = await poll({ prefix: "feed", after: some.json.cursor, timeout: "0" });
    expect(rest.json.changes.map((c: { versionstamp: string }) => c.versionstamp)).toEqual(
      stamps.slice(2),
    );
  });

  it("answers a reset, not a wait, for a resume point the database never reached", async () => {
    await server.kv.set(["ahead", 1], 1);
    const head = await server.kv.currentVersionstamp();
    const reply = await poll({ prefix: "ahead", after: "0000ffffffffffff0000", timeout: "5000" });
    expect(reply.json).toEqual({
      changes: [{ versionstamp: head, entries: [], reset: true }],
      cursor: head,
    });
  });
});
