/** `cellar serve` as a child process: shutdown on SIGTERM, refused hosts. */
import type { ChildProcess } from "node:child_process";
import { Agent } from "node:http";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openKv } from "../../src/index.js";
import { cellarServe } from "../cli/serve.js";
import { send, sleep, sse, tempDir } from "./helpers.js";

describe("the cellar serve command", () => {
  const dir = tempDir("cellar-http-");
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    dir.cleanup();
  });

  function run(args: string[]) {
    const served = cellarServe(args);
    children.push(served.child);
    return served;
  }

  it("acknowledges only durable writes across a SIGTERM under load, and exits 0", async () => {
    const db = join(dir.path, "shutdown.db");
    const server = run(["--db", db, "--port", "0"]);
    const url = await server.listening();

    const acknowledged: number[] = [];
    let next = 0;
    let stopped: () => void;
    const enough = new Promise<void>((resolve) => {
      stopped = resolve;
    });
    const worker = async () => {
      while (next < 5000) {
        const i = next++;
        try {
          const reply = await send(url, `/api/keys/load/~n:${i}`, {
            method: "PUT",
            body: { value: { i } },
          });
          if (reply.status !== 200) throw new Error(reply.text);
          acknowledged.push(i);
          if (acknowledged.length === 150) stopped();
        } catch {
          return;
        }
      }
    };
    const workers = Array.from({ length: 32 }, worker);
    await enough;
    server.child.kill("SIGTERM");
    await Promise.all(workers);
    expect(await server.exited).toBe(0);
    expect(server.output().stdout).toContain("SIGTERM, shutting down");
    expect(acknowledged.length).toBeGreaterThanOrEqual(150);

    const kv = await openKv(db);
    try {
      const stored = new Map<number, unknown>();
      for await (const entry of kv.list<{ i: number }>({ prefix: ["load"] })) {
        stored.set(entry.key[1] as number, entry.value);
      }
      const missing = acknowledged.filter((i) => !stored.has(i));
      expect(missing).toEqual([]);
      for (const i of acknowledged) expect(stored.get(i)).toEqual({ i });
    } finally {
      await kv.close();
    }
  });

  it("answers a waiting queue poll at once on SIGTERM, and exits promptly", async () => {
    const server = run(["--db", ":memory:", "--port", "0"]);
    const url = await server.listening();
    try {
      const poll = send(url, "/api/queues/jobs/dequeue", {
        method: "POST",
        body: { wait: 20_000 },
      });
      // The poll was sent first; once a later request is answered, the server has read it.
      await sleep(300);
      expect((await send(url, "/healthz")).status).toBe(200);
      server.child.kill("SIGTERM");
      const reply = await poll;
      expect(reply.status).toBe(200);
      expect(reply.json).toEqual({ messages: [] });
      expect(await Promise.race([server.exited, sleep(2500).then(() => "still running")])).toBe(0);
    } finally {
      if (server.child.exitCode === null) server.child.kill("SIGKILL");
    }
  });

  // Bug: close() calls closeIdleConnections() once, before the streams it ends have finished
  // their responses; their keep-alive connections then turn idle and hold the process until
  // the server's keepAliveTimeout (5 s) passes.
  it("exits promptly on SIGTERM while watch streams are open on keep-alive connections", async () => {
    const server = run(["--db", ":memory:", "--port", "0"]);
    const url = await server.listening();
    const agent = new Agent({ keepAlive: true });
    try {
      const stream = await sse(url, "/api/watch?key=a", { agent });
      await stream.next();
      server.child.kill("SIGTERM");
      expect(await Promise.race([server.exited, sleep(2500).then(() => "still running")])).toBe(0);
    } finally {
      agent.destroy();
      if (server.child.exitCode === null) server.child.kill("SIGKILL");
    }
  });

  it("refuses --host 0.0.0.0 without tokens, with a clear message and a non-zero exit", async () => {
    const server = run(["--db", ":memory:", "--host", "0.0.0.0", "--port", "0"]);
    expect(await server.exited).not.toBe(0);
    expect(server.output().stderr).toMatch(
      /refusing to listen on 0\.0\.0\.0 without a tokens file.*--tokens.*--insecure/,
    );
    expect(server.output().stdout).not.toContain("listening");
  });
});
