/**
 * The `mirrors` setting of `cellar serve`, checked before the server starts: each mistake is a
 * `ConfigError` (one line, exit status 2) naming the mirror and the field, with the URL's
 * password hidden.
 */
import { describe, expect, it } from "vitest";
import { mirrorSpecs } from "../../src/cli/mirrors.js";
import { ConfigError } from "../../src/cli/serve-config.js";

const to = "postgres://app:secret-password@127.0.0.1:5432/test";

describe("the mirrors setting", () => {
  it("takes a key path or a JSON key as the prefix, one mirror or several", () => {
    expect(mirrorSpecs({ prefix: "users/~n:1", to, table: "users" })).toEqual([
      { prefix: ["users", 1], to, table: "users", direction: "out" },
    ]);
    expect(
      mirrorSpecs([
        { prefix: ["a", { $bigint: "2" }], to, table: "a", namespace: "team", direction: "both" },
        { prefix: [], to, table: "b" },
      ]),
    ).toEqual([
      { prefix: ["a", 2n], to, table: "a", namespace: "team", direction: "both" },
      { prefix: [], to, table: "b", direction: "out" },
    ]);
  });

  it.each([
    [{ prefix: "u", to, table: "bad name" }, /^mirrors\[0\]: mirror table must be/],
    [{ prefix: "u", to, table: "u", tabel: "x" }, /^mirrors\[0\]: unknown field "tabel"/],
    [{ prefix: "u", to: "mysql://db/x", table: "u" }, /mirror to is a PostgreSQL URL/],
    [{ prefix: "u", to, table: "u", direction: "in" }, /direction is "out" or "both"/],
    [{ prefix: 7, to, table: "u" }, /prefix must be a JSON key/],
    [{ prefix: "u", to, table: "u", namespace: "$x" }, /namespace name/],
    [{ prefix: "u", to: `${to}?schema=a-b`, table: "u" }, /mirror schema must be/],
    ["users", /^mirrors\[0\] must be an object/],
  ])("refuses %j", (spec, message) => {
    let error: unknown;
    try {
      mirrorSpecs([spec]);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("secret-password");
  });

  it("refuses two mirrors into one table", () => {
    const one = { prefix: "u", to, table: "u" };
    expect(() => mirrorSpecs([one, { ...one, prefix: "v" }])).toThrow(
      /mirrors\[1\]: another mirror already writes public\.u/,
    );
  });
});
