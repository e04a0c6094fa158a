/** `cellar serve` never prints a PostgreSQL password: not on startup, not when it fails to open. */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { redactUrl } from "../../src/errors.js";
import { send } from "../http/helpers.js";
import { cellarServe, type Served } from "./serve.js";

const POSTGRES = new URL(
  process.env.CELLAR_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
);
const SECRET = "s3cret-Pa55word";
const schema = `cellar_redact_${randomBytes(4).toString("hex")}`;

/** The test server's URL with a password (trust authentication ignores it) and a schema. */
function withPassword(port = POSTGRES.port): string {
  const url = new URL(POSTGRES);
  url.username ||= "postgres";
  url.password = SECRET;
  url.port = port;
  url.searchParams.set("schema", schema);
  return url.toString();
}

const running: Served[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  const client = new pg.Client({ connectionString: POSTGRES.toString() });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
});

describe("the PostgreSQL password", () => {
  it("is masked by redactUrl, which leaves paths and URLs without a password alone", () => {
    expect(redactUrl("postgres://app:secret@db:5432/prod?schema=x")).toBe(
      "postgres://app:***@db:5432/prod?schema=x",
    );
    expect(redactUrl("postgres://app@db:5432/prod")).toBe("postgres://app@db:5432/prod");
    expect(redactUrl("data/cellar.db")).toBe("data/cellar.db");
    expect(redactUrl(":memory:")).toBe(":memory:");
    expect(redactUrl("postgres://[bad")).toBe("(unparsable URL)");
  });

  it("is masked in the startup line, from a flag and from DATABASE_URL", async () => {
    for (const served of [
      cellarServe(["--db", withPassword(), "--port", "0"]),
      cellarServe([], { DATABASE_URL: withPassword(), PORT: "0" }),
    ]) {
      running.push(served);
      const url = await served.listening();
      expect((await send(url, "/api/keys/a", { method: "PUT", body: { value: 1 } })).status).toBe(
        200,
      );
      const { stdout, stderr } = served.output();
      expect(stdout).toContain(":***@");
      expect(stdout + stderr).not.toContain(SECRET);
      await served.stop();
    }
  });

  it("is masked when the database cannot be opened", async () => {
    const served = cellarServe(["--db", withPassword("1"), "--port", "0"]);
    running.push(served);
    expect(await served.exited).toBe(1);
    const { stdout, stderr } = served.output();
    expect(stderr).toMatch(/cannot open PostgreSQL database postgres:\/\/postgres:\*\*\*@/);
    expect(stdout + stderr).not.toContain(SECRET);
  });
});
