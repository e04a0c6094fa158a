/** GET /api/session: what the request's token may do, which the admin UI shows before it writes. */
import { describe, expect, it } from "vitest";
import { expectError, send, serverFor } from "./helpers.js";

const ADMIN = "session-admin-token-000000";
const READER = "session-two-namespaces-00";
const TOKENS = [
  { token: ADMIN, namespaces: ["*"], access: "admin" as const, name: "ops" },
  { token: READER, namespaces: ["a", "b"], access: "read" as const },
];

describe("GET /api/session", () => {
  const open = serverFor();
  const guarded = serverFor({ tokens: TOKENS });

  it("answers an admin of every namespace where tokens are off", async () => {
    const reply = await send(open().url, "/api/session");
    expect([reply.status, reply.json]).toEqual([
      200,
      { tokens: false, name: null, access: "admin", namespace: "", namespaces: ["*"] },
    ]);
  });

  it("names the token, its access and namespaces, and the namespace the request works in", async () => {
    const admin = await send(guarded().url, "/api/session", {
      token: ADMIN,
      namespace: "tenant-x",
    });
    expect(admin.json).toEqual({
      tokens: true,
      name: "ops",
      access: "admin",
      namespace: "tenant-x",
      namespaces: ["*"],
    });
    // A token of several namespaces needs no header to ask: it gets its first.
    const reader = await send(guarded().url, "/api/session", { token: READER });
    expect(reader.json).toEqual({
      tokens: true,
      name: null,
      access: "read",
      namespace: "a",
      namespaces: ["a", "b"],
    });
    expectError(await send(guarded().url, "/api/session"), 401, "UNAUTHORIZED");
    expectError(
      await send(guarded().url, "/api/session", { token: READER, namespace: "c" }),
      403,
      "FORBIDDEN",
    );
  });
});
