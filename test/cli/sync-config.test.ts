/** `cellar serve --sync`: the client store's sync settings from the command line. */
import { afterAll, describe, expect, it } from "vitest";
import { type ClientKv, createClientKv } from "../../src/index.js";
import { cellarServe, type Served } from "./serve.js";

const running: Served[] = [];
const clients: ClientKv[] = [];
afterAll(async () => {
  for (const client of clients) await client.close();
  await Promise.all(running.map((s) => s.stop()));
});

function start(args: string[]) {
  const served = cellarServe(["--db", ":memory:", "--port", "0", ...args]);
  running.push(served);
  return served;
}

describe("cellar serve --sync", () => {
  it("takes conflict policies and read-only prefixes", async () => {
    const served = start([
      "--sync",
      '{"conflict":"last-writer-wins","rules":[{"prefix":["catalog"],"readOnly":true}]}',
    ]);
    const url = await served.listening();
    const kv = await createClientKv({ url, manual: true });
    const other = await createClientKv({ url });
    clients.push(kv, other);
    // Written offline on no version of the key, while another client writes it: a conflict,
    // which last-writer-wins applies anyway.
    const stale = await kv.set(["note"], "mine");
    expect(await (await other.set(["note"], "theirs")).confirmed).toMatchObject({ ok: true });
    kv.connect();
    expect(await stale.confirmed).toMatchObject({ ok: true });
    await kv.whenSynced();
    expect(kv.peek(["note"]).value).toBe("mine");
    const refused = await (await kv.set(["catalog", 1], "x")).confirmed;
    expect(refused).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
  });

  it("refuses a bad policy with one line and exit status 2", async () => {
    const served = start(["--sync", '{"conflict":"newest"}']);
    expect(await served.exited).toBe(2);
    const { stderr } = served.output();
    expect(stderr).toMatch(/--sync.*expected false, or a JSON object/);
    expect(stderr.trim().split("\n")).toHaveLength(1);
  });
});
