/**
 * `cellar serve --mirrors` and the `mirrors` config field: mirrors start with the server and
 * close before it, writes over HTTP reach the table and rows written in it reach the API, the
 * metrics report them; a mistake in a mirror's configuration is one line and exit status 2.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cellarServe, type Served } from "../cli/serve.js";
import { send } from "../http/helpers.js";
import { freshSchema, sql, tempDir, until, urlOf, values } from "./helpers.js";

const running: Served[] = [];
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
});

function start(args: string[], env: Record<string, string> = {}) {
  const served = cellarServe(["--port", "0", "--db", ":memory:", ...args], env);
  running.push(served);
  return served;
}

async function expectRefusal(served: Served, message: RegExp) {
  expect(await served.exited).toBe(2);
  const { stderr, stdout } = served.output();
  expect(stderr).toMatch(message);
  expect(stderr.trim().split("\n")).toHaveLength(1);
  expect(stdout).not.toContain("listening");
}

describe.concurrent("cellar serve with mirrors", () => {
  it("mirrors a prefix given on the command line while it serves", async () => {
    const schema = freshSchema("serve");
    const served = start([
      "--mirrors",
      JSON.stringify([{ prefix: "users", to: urlOf(schema), table: "users" }]),
    ]);
    const url = await served.listening();
    expect(
      (await send(url, "/api/keys/users/ada", { method: "PUT", body: { value: { n: 1 } } })).status,
    ).toBe(200);
    expect((await send(url, "/api/keys/other", { method: "PUT", body: { value: 2 } })).status).toBe(
      200,
    );
    await until(async () => {
      try {
        return (await values(schema, "users"))["users/ada"] !== undefined;
      } catch {
        return false;
      }
    }, "the row");
    expect(await values(schema, "users")).toEqual({ "users/ada": { n: 1 } });
    const metrics = await send(url, "/metrics");
    expect(metrics.text).toContain(
      `cellar_mirror_lag_versionstamps{table="${schema}.users",direction="out"}`,
    );
    expect(served.output().stdout).toMatch(/"msg":"mirror [^"]*users: started"/);
    await served.stop();
    expect(await served.exited).toBe(0);
  });

  it("takes mirrors from the config file, both ways and in a namespace", async () => {
    const schema = freshSchema("servefile");
    const config = join(tempDir(), "serve.json");
    writeFileSync(
      config,
      JSON.stringify({
        mirrors: [
          {
            prefix: ["notes"],
            to: urlOf(schema),
            table: "notes",
            namespace: "team",
            direction: "both",
          },
        ],
      }),
    );
    const served = start(["--config", config]);
    const url = await served.listening();
    await until(async () => {
      const found = await (await sql()).query("SELECT to_regclass($1) AS t", [`"${schema}".notes`]);
      return found.rows[0].t !== null;
    }, "the table");
    await (await sql()).query(
      `INSERT INTO "${schema}".notes (key, value) VALUES ('notes/a', '"from postgres"')`,
    );
    await until(
      async () =>
        (await send(url, "/api/keys/notes/a", { namespace: "team" })).json?.value ===
        "from postgres",
      "the row in Cellar",
    );
    expect((await send(url, "/api/keys/notes/a")).json.versionstamp).toBeNull();
  });

  it("refuses a mirror it cannot run, in one line", async () => {
    const to = "postgres://app:secret-password@127.0.0.1:5432/test";
    const served = start(["--mirrors", JSON.stringify({ prefix: "u", to, table: "bad name" })]);
    await expectRefusal(served, /^cellar: mirrors\[0\]: mirror table must be 1–63 letters/);
    expect(served.output().stderr).not.toContain("secret-password");
  });
});
