/** A tokens file (or `tokens` option) that lists one token twice is refused, naming both grants. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { loadTokens } from "../../src/http/auth.js";
import { startServer } from "../../src/server/serve.js";
import { tempDir } from "./helpers.js";

const dir = tempDir("cellar-tokens-");
afterAll(() => dir.cleanup());

const TOKEN = "s3cret-token-0123456789";

it("refuses a tokens file that lists a token twice", () => {
  const path = join(dir.path, "tokens.json");
  writeFileSync(
    path,
    JSON.stringify({
      tokens: [
        { token: TOKEN, namespaces: ["a"], access: "read", name: "reader" },
        { token: "another-token-0123456789", namespaces: ["b"], access: "write" },
        { token: TOKEN, namespaces: ["*"], access: "admin", name: "admin" },
      ],
    }),
  );
  expect(() => loadTokens(path)).toThrow(
    expect.objectContaining({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/token admin is the same token as reader/),
    }),
  );
});

it("refuses a grant with a field it does not know, naming it", () => {
  const path = join(dir.path, "typo.json");
  writeFileSync(
    path,
    JSON.stringify({
      tokens: [{ token: TOKEN, namespaces: ["a"], acess: "write", access: "read" }],
    }),
  );
  expect(() => loadTokens(path)).toThrow(
    expect.objectContaining({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("acess"),
    }),
  );
});

it("refuses the same through the tokens option", async () => {
  await expect(
    startServer({
      db: ":memory:",
      port: 0,
      tokens: [
        { token: TOKEN, namespaces: ["a"], access: "read" },
        { token: TOKEN, namespaces: ["b"], access: "write" },
      ],
    }),
  ).rejects.toMatchObject({
    code: "INVALID_ARGUMENT",
    message: expect.stringMatching(/#2 is the same token as #1/),
  });
});
