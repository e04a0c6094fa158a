/** KV Connect's `snapshot_read`: every range of the request, read from one snapshot. */
import { create } from "@bufbuild/protobuf";
import type { RawEntry, ReadRange } from "../contract/index.js";
import type { KvCore } from "../core/surface.js";
import { KvError } from "../errors.js";
import type { ConnectSpace } from "./namespace.js";
import {
  type KvEntry,
  KvEntrySchema,
  ReadRangeOutputSchema,
  type SnapshotRead,
  type SnapshotReadOutput,
  SnapshotReadOutputSchema,
  SnapshotReadStatus,
} from "./proto/datapath_pb.js";
import { connectFromRaw, versionstampBytes } from "./values.js";

/** A stored entry as the client sees it: its key inside the namespace, its value in a KV Connect encoding. */
export function entryToConnect(space: ConnectSpace, raw: RawEntry): KvEntry {
  const { data, encoding } = connectFromRaw(raw.value);
  return create(KvEntrySchema, {
    key: space.clientKey(raw.key),
    value: data,
    encoding,
    versionstamp: versionstampBytes(raw.versionstamp),
  });
}

/**
 * Reads the request's ranges. Each limit is 1–1000 entries and all of them together at most the
 * database's `maxReadKeys`, as Deno KV bounds one read.
 */
export async function snapshotRead(
  core: KvCore,
  space: ConnectSpace,
  request: SnapshotRead,
): Promise<SnapshotReadOutput> {
  let total = 0;
  const planned = request.ranges.map((r): ReadRange | null => {
    if (r.limit < 1 || r.limit > 1000)
      throw new KvError("INVALID_REQUEST", `a read range's limit is 1–1000, got ${r.limit}`);
    total += r.limit;
    const range = space.range(r.start, r.end);
    return range && { ...range, limit: r.limit, reverse: r.reverse };
  });
  if (total > core.limits.maxReadKeys) {
    throw new KvError(
      "INVALID_REQUEST",
      `one read returns at most ${core.limits.maxReadKeys} entries; the ranges ask for ${total}`,
    );
  }
  const reads = planned.filter((range): range is ReadRange => range !== null);
  const results = reads.length > 0 ? await core.read(reads, space.keyspace) : [];
  let next = 0;
  const ranges = planned.map((range) =>
    create(ReadRangeOutputSchema, {
      values: range ? (results[next++] ?? []).map((raw) => entryToConnect(space, raw)) : [],
    }),
  );
  return create(SnapshotReadOutputSchema, {
    ranges,
    readDisabled: false,
    readIsStronglyConsistent: true,
    status: SnapshotReadStatus.SR_SUCCESS,
  });
}
