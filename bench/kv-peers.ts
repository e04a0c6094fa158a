/**
 * The Deno KV peers, each in a child process running bench/kv-peer.ts: the Deno binary
 * (`Deno.openKv`) and @deno/kv under Node. A workload step is one request and its answer, so
 * the harness takes turns between a peer and Cellar as between two stores in one process.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Batch, Ops } from "./harness.js";
import type { PeerDone, PeerReply, PeerRequest } from "./kv-peer.js";

const SCRIPT = fileURLToPath(new URL("./kv-peer.ts", import.meta.url));
const DENO = fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url));

export type PeerKind = "deno" | "@deno/kv";

export const PEER_NAMES: Record<PeerKind, string> = {
  deno: "Deno binary, Deno.openKv",
  "@deno/kv": "@deno/kv (Node)",
};

export interface Peer {
  readonly name: string;
  /** Sends one request; rejects when the peer answers with an error or stops answering. */
  request(request: PeerRequest, stallMs?: number): Promise<PeerDone>;
  /** A workload of the store opened by `open`, `n` operations per request. */
  batch(op: "get" | "burst" | "list"): Batch;
  /** The figure to report: "hung" once the peer stopped answering and was killed. */
  ops(measured: number): Ops;
  close(): Promise<void>;
}

/**
 * Starts a peer. A request unanswered for `stallMs` (the default 60 s: @deno/kv's native
 * backend can busy-loop inside `list`) kills the peer; its later batches return at once.
 */
export function startPeer(kind: PeerKind, log: (step: string) => void): Peer {
  const [command, args] =
    kind === "deno"
      ? [DENO, ["run", "-A", "--unstable-kv", "--sloppy-imports", SCRIPT]]
      : // The Node child loads TypeScript the way this process does (tsx's flags).
        [process.execPath, [...process.execArgv, SCRIPT]];
  const child = spawn(command, args, {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" },
  });
  const name = PEER_NAMES[kind];
  const waiting: ((reply: PeerReply | Error) => void)[] = [];
  let hung = false;
  let buffered = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n")) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      waiting.shift()?.(JSON.parse(line) as PeerReply);
    }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => {
    for (const settle of waiting.splice(0)) settle(new Error(`${name} exited`));
  });

  function request(message: PeerRequest, stallMs = 60_000): Promise<PeerDone> {
    if (hung) return Promise.reject(new Error(`${name} hung`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        hung = true;
        log(`${name}: ${message.op} unanswered after ${stallMs / 1000} s; killed`);
        child.kill("SIGKILL");
      }, stallMs);
      waiting.push((reply) => {
        clearTimeout(timer);
        if (reply instanceof Error) reject(reply);
        else if ("error" in reply) reject(new Error(`${name}: ${reply.error}`));
        else resolve(reply);
      });
      child.stdin.write(`${JSON.stringify(message)}\n`);
    });
  }

  return {
    name,
    request,
    batch: (op) => async (n) => {
      if (hung) return;
      await request({ op, n }).catch((error: Error) => {
        if (!hung) throw error;
      });
    },
    ops: (measured) => (hung ? "hung" : measured),
    async close() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
