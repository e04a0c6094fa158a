/**
 * Two client stores in two processes of their own, through one server: what one writes the
 * other shows; one killed (SIGKILL) while offline with a write in its outbox comes back from
 * its SQLite file, sends it, and both converge.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../../src/server/serve.js";
import { startProxy, until } from "../workspace/helpers.js";

const SCRIPT = fileURLToPath(new URL("./client-process.ts", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "cellar-client-processes-"));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

interface Client {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  send(command: unknown): void;
}

function start(url: string, storage: string): Client {
  const child = spawn(process.execPath, ["--import", "tsx", SCRIPT, url, storage], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(JSON.parse(line)));
  return { child, lines, send: (command) => child.stdin!.write(`${JSON.stringify(command)}\n`) };
}

const shows = (client: Client, value: unknown) =>
  client.lines.some((l) => "event" in l && l.value === value && l.pending === false);

describe("client stores in two processes", () => {
  let server: RunningServer;
  afterAll(() => server?.close());

  it("replicate to each other, and one killed offline comes back with its outbox", async () => {
    server = await startServer({ db: join(dir, "server.db"), port: 0 });
    const proxy = await startProxy(server.url);
    const a = start(proxy.url, join(dir, "a.db"));
    const b = start(server.url, join(dir, "b.db"));
    await until(
      () => [a, b].every((c) => c.lines.some((l) => l.state === "online")),
      "both online",
      30_000,
    );

    a.send({ op: "set", key: ["shared"], value: "from a" });
    await until(() => shows(b, "from a"), "b to show a's write", 15_000);

    proxy.offline();
    await until(() => a.lines.some((l) => l.state === "offline"), "a offline");
    a.send({ op: "set", key: ["shared"], value: "a, offline" });
    await until(
      () => a.lines.some((l) => "written" in l && l.written === 2),
      "a's offline write saved",
    );
    a.child.kill("SIGKILL");
    await new Promise((resolve) => a.child.once("exit", resolve));
    expect((await server.kv.get(["shared"])).value).toBe("from a");

    proxy.online();
    const again = start(proxy.url, join(dir, "a.db"));
    await until(() => again.lines.some((l) => l.opened), "a restarted", 30_000);
    expect(again.lines.find((l) => l.opened)).toMatchObject({ value: "a, offline", pending: 1 });
    await until(() => shows(b, "a, offline"), "b to converge", 15_000);
    expect((await server.kv.get(["shared"])).value).toBe("a, offline");
    await until(() => again.lines.some((l) => l.state === "online" && l.pending === 0), "a synced");
    await proxy.close();
  }, 90_000);
});
