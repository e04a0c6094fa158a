/**
 * The seed's multi-environment write flow end to end, on real components: a client store's write
 * is shown at once, saved in its outbox, sent to the server, validated and committed there,
 * written to a PostgreSQL table by a mirror and sent to every other client; a change made
 * directly in that table (another service's UPDATE) reaches the client stores; nothing loops.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { createClientKv, mirror } from "../../src/index.js";
import { startServer } from "../../src/server/serve.js";
import { freshSchema, sql, urlOf, values } from "../mirror/helpers.js";
import { until } from "../workspace/helpers.js";

const dir = mkdtempSync(join(tmpdir(), "cellar-write-flow-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a client write through server, mirror and other clients", () => {
  it("reaches PostgreSQL and the other client; an UPDATE in PostgreSQL reaches both clients", async () => {
    const server = await startServer({
      db: join(dir, "server.db"),
      port: 0,
      sync: { rules: [{ prefix: ["todos"], schema: z.object({ title: z.string() }) }] },
    });
    const schema = freshSchema("flow");
    const table = mirror(server.kv, {
      prefix: ["todos"],
      to: urlOf(schema),
      table: "todos",
      direction: "both",
    });
    const a = await createClientKv({
      url: server.url,
      prefixes: [["todos"]],
      storage: join(dir, "a.db"),
    });
    const b = await createClientKv({ url: server.url, prefixes: [["todos"]] });
    try {
      await Promise.all([a.whenSynced(), b.whenSynced()]);
      // 1–4: shown at once, saved in the outbox.
      const write = await a.set(["todos", "milk"], { title: "buy milk" });
      expect(a.peek(["todos", "milk"])).toMatchObject({
        value: { title: "buy milk" },
        pending: true,
      });
      // 5–9: sent, validated and committed on the server.
      expect(await write.confirmed).toMatchObject({ ok: true });
      // 8: a value the schema refuses comes back to the writer, and goes nowhere else.
      const bad = await (await a.set(["todos", "bad"], { title: 42 })).confirmed;
      expect(bad).toMatchObject({ ok: false, error: { code: "INVALID_VALUE" } });
      // 10–11: the mirror writes the row.
      await table.flush();
      const t = `"${schema}".todos`;
      expect(await values(schema, "todos")).toEqual({ "todos/milk": { title: "buy milk" } });
      // 12–13: every other client gets the authoritative entry.
      await until(() => b.peek(["todos", "milk"]).exists, "b to get the write");
      expect(b.peek(["todos", "milk"])).toMatchObject({
        value: { title: "buy milk" },
        pending: false,
      });

      // Another service changes the row: the change reaches both client stores.
      const db = await sql();
      await db.query(`UPDATE ${t} SET value = '{"title":"buy oat milk"}' WHERE key = 'todos/milk'`);
      await until(
        () =>
          [a, b].every(
            (c) => (c.peek(["todos", "milk"]).value as { title: string })?.title === "buy oat milk",
          ),
        "the UPDATE to reach the clients",
      );
      await table.flush();
      // It settles: no echo back into the table, no further commits.
      const settled = await server.kv.currentVersionstamp();
      await table.flush();
      expect(await server.kv.currentVersionstamp()).toBe(settled);
      expect(await values(schema, "todos")).toEqual({ "todos/milk": { title: "buy oat milk" } });
      expect((await server.kv.get(["todos", "bad"])).versionstamp).toBeNull();
    } finally {
      await a.close();
      await b.close();
      await table.close();
      await server.close();
    }
  }, 60_000);
});
