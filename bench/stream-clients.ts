/**
 * Many subscriber connections at little CPU each, so that a fan-out measures the server rather
 * than the process holding the subscribers: each connection is a bare TCP socket that counts
 * the bytes it receives, and connection 0 alone also counts the messages in them. Every
 * subscriber is sent the same bytes (an SSE broadcast writes one buffer to all its connections;
 * Redis writes each subscriber the same message), so a connection that received as many bytes as
 * connection 0 got every message connection 0 counted.
 */
import { connect, type Socket } from "node:net";

export interface Streams {
  /** Messages connection 0 has counted. */
  readonly messages: number;
  /** Bytes connection 0 has received after the answer to its request. */
  readonly bytes: number;
  /** The first message's data connection 0 received (SSE only), once it has one. */
  readonly sample: string | undefined;
  /**
   * Resolves with the moment (performance.now) connection 0 has counted `goal` messages and
   * every connection has received as many bytes as it had then; rejects after `ms`.
   */
  caughtUp(goal: number, ms: number): Promise<number>;
  /** Connections that have not received all connection 0 had at the last {@link caughtUp}. */
  lagging(): number;
  /** Connections the server closed. */
  readonly ended: number;
  close(): void;
}

interface Protocol {
  /** What a connection sends once connected. */
  readonly request: string;
  /** Ends the answer to the request; the bytes after it are counted. */
  readonly ready: Buffer;
  /** Checks the answer up to `ready`; throws if the server refused. */
  readonly check: (head: string) => void;
  /** Starts each counted message. */
  readonly message: Buffer;
}

/** Connections opened at a time, so the server's accept backlog never overflows. */
const OPENING = 100;

/** `count` SSE connections to `url`, counting messages of type `event`. */
export function sseStreams(url: string, count: number, event: string): Promise<Streams> {
  const { host, port, pathname, search } = new URL(url);
  return openStreams(Number(port), count, {
    request: `GET ${pathname}${search} HTTP/1.1\r\nHost: ${host}\r\nAccept: text/event-stream\r\n\r\n`,
    ready: Buffer.from("\r\n\r\n"),
    check: (head) => {
      if (!head.startsWith("HTTP/1.1 200")) throw new Error(`GET ${url}: ${head.split("\r\n")[0]}`);
    },
    message: Buffer.from(`event: ${event}\n`),
  });
}

/** `count` Redis connections subscribed to the glob `pattern`, counting messages. */
export function redisStreams(port: number, count: number, pattern: string): Promise<Streams> {
  const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  const reply = `*3\r\n${bulk("psubscribe")}${bulk(pattern)}:1\r\n`;
  return openStreams(port, count, {
    request: `*2\r\n${bulk("PSUBSCRIBE")}${bulk(pattern)}`,
    ready: Buffer.from(reply),
    check: () => {},
    message: Buffer.from(bulk("pmessage")),
  });
}

async function openStreams(port: number, count: number, protocol: Protocol): Promise<Streams> {
  const sockets: Socket[] = [];
  const bytes = new Float64Array(count);
  let messages = 0;
  let sample: string | undefined;
  let ended = 0;
  let closing = false;
  let tail: Buffer | null = null;
  let target = Number.POSITIVE_INFINITY;
  let behind = 0;
  let waiter: { goal: number; resolve: (at: number) => void } | null = null;

  const settle = () => {
    if (!waiter) return;
    if (target === Number.POSITIVE_INFINITY) {
      if (messages < waiter.goal) return;
      target = bytes[0]!;
      behind = 0;
      for (const received of bytes) if (received < target) behind++;
    }
    if (behind === 0) {
      waiter.resolve(performance.now());
      waiter = null;
    }
  };

  const count0 = (chunk: Buffer) => {
    const needle = protocol.message;
    let found = occurrences(chunk, needle);
    // A message split between chunks: search the seam too.
    if (tail)
      found += occurrences(Buffer.concat([tail, chunk.subarray(0, needle.length - 1)]), needle);
    tail = chunk.subarray(Math.max(0, chunk.length - needle.length + 1));
    if (found > 0 && sample === undefined) sample = dataOf(chunk, needle);
    messages += found;
  };

  const receive = (i: number, chunk: Buffer) => {
    const before = bytes[i]!;
    bytes[i] = before + chunk.length;
    if (i === 0) count0(chunk);
    if (before < target && bytes[i]! >= target) behind--;
    settle();
  };

  const open = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      sockets.push(socket);
      let head: Buffer | null = Buffer.alloc(0);
      socket.once("connect", () => socket.write(protocol.request));
      socket.on("data", (chunk: Buffer) => {
        if (head === null) return receive(i, chunk);
        head = Buffer.concat([head, chunk]);
        const at = head.indexOf(protocol.ready);
        if (at === -1) return;
        const rest = head.subarray(at + protocol.ready.length);
        try {
          protocol.check(head.toString("latin1", 0, at));
        } catch (error) {
          return reject(error);
        }
        head = null;
        if (rest.length > 0) receive(i, rest);
        resolve();
      });
      socket.once("end", () => {
        if (!closing) ended++;
      });
      socket.once("error", (error) => (closing ? resolve() : reject(error)));
    });
  for (let start = 0; start < count; start += OPENING) {
    const batch: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + OPENING); i++) batch.push(open(i));
    await Promise.all(batch);
  }

  return {
    get messages() {
      return messages;
    },
    get bytes() {
      return bytes[0]!;
    },
    get sample() {
      return sample;
    },
    get ended() {
      return ended;
    },
    caughtUp(goal, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = null;
          reject(new Error(`${messages} of ${goal} messages, ${behind} connections behind`));
        }, ms);
        target = Number.POSITIVE_INFINITY;
        waiter = {
          goal,
          resolve: (at) => {
            clearTimeout(timer);
            resolve(at);
          },
        };
        settle();
      });
    },
    lagging: () => (target === Number.POSITIVE_INFINITY ? count : behind),
    close() {
      closing = true;
      for (const socket of sockets) socket.destroy();
    },
  };
}

function occurrences(buffer: Buffer, needle: Buffer): number {
  let found = 0;
  for (let at = buffer.indexOf(needle); at !== -1; at = buffer.indexOf(needle, at + needle.length))
    found++;
  return found;
}

/** The `data:` line following the first message start in `chunk`, if whole. */
function dataOf(chunk: Buffer, needle: Buffer): string | undefined {
  const at = chunk.indexOf(needle);
  if (at === -1) return undefined;
  return /^data: (.*)$/m.exec(chunk.toString("utf8", at))?.[1];
}
