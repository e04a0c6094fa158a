/**
 * KV Connect's `watch` (protocol version 3): a response body of frames, each a 4-byte
 * little-endian length and a `WatchOutput`. The first frame holds every watched key; later ones
 * come after commits (or expiries) that changed a watched key. Every frame carries every key with
 * `changed: true`, as denokv's server does: Deno's client reads a `changed: false` key as absent.
 * A slow client skips intermediate states. An empty frame (length 0) is a keep-alive.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { concatBytes } from "../codec/key.js";
import type { KvCore } from "../core/surface.js";
import { KvError } from "../errors.js";
import type { ConnectSpace } from "./namespace.js";
import {
  SnapshotReadStatus,
  type Watch,
  type WatchKeyOutput,
  WatchKeyOutputSchema,
  WatchOutputSchema,
} from "./proto/datapath_pb.js";
import { entryToConnect } from "./read.js";

const KEEP_ALIVE = new Uint8Array(4);

function frame(message: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(4 + message.length);
  out.writeUInt32LE(message.length, 0);
  out.set(message, 4);
  return out;
}

export interface WatchBody {
  readonly body: ReadableStream<Uint8Array>;
  /** Ends the response (server shutdown). */
  readonly end: () => void;
}

/** Opens a watch of the request's keys (at most `maxKeys`) as a framed response body. */
export function watchBody(
  core: KvCore,
  space: ConnectSpace,
  request: Watch,
  options: { maxKeys: number; pingInterval: number; onClose: () => void },
): WatchBody {
  if (request.keys.length > options.maxKeys) {
    throw new KvError(
      "INVALID_ARGUMENT",
      `a watch names at most ${options.maxKeys} keys, got ${request.keys.length}`,
    );
  }
  const ranges = request.keys.map((k) => {
    const start = space.storedKey(k.key);
    return { start, end: concatBytes(start, 0x00), limit: 1, reverse: false };
  });
  const reader = core.watch(ranges, space.keyspace).getReader();
  let ping: NodeJS.Timeout | null = null;
  let done = false;
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  const finish = () => {
    if (done) return;
    done = true;
    if (ping) clearInterval(ping);
    void reader.cancel().catch(() => {});
    options.onClose();
  };
  const body = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        ping = setInterval(() => {
          if (!done && (c.desiredSize ?? 0) > 0) c.enqueue(KEEP_ALIVE);
        }, options.pingInterval);
      },
      async pull(c) {
        try {
          const { done: ended, value } = await reader.read();
          if (done) return;
          if (ended) {
            finish();
            c.close();
            return;
          }
          const outputs: WatchKeyOutput[] = value.map((entry) =>
            create(WatchKeyOutputSchema, {
              changed: true,
              ...(entry && { entryIfChanged: entryToConnect(space, entry) }),
            }),
          );
          c.enqueue(
            frame(
              toBinary(
                WatchOutputSchema,
                create(WatchOutputSchema, { status: SnapshotReadStatus.SR_SUCCESS, keys: outputs }),
              ),
            ),
          );
        } catch (error) {
          finish();
          c.error(error);
        }
      },
      cancel: finish,
    },
    { highWaterMark: 1 },
  );
  const end = () => {
    if (done) return;
    finish();
    try {
      controller?.close();
    } catch {
      // Already closed or errored by its reader.
    }
  };
  return { body, end };
}
