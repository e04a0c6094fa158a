// A Deno program (run by the KV Connect tests with `deno run --unstable-kv`): opens the KV
// Connect database at Deno.args[0], runs the scenario named by Deno.args[1], and prints its
// observations as one line of tagged JSON ($bigint, $bytes, $u64, $date, $map, $set, $undefined).

const [url, scenario] = Deno.args;

function tag(value) {
  if (value === undefined) return { $undefined: true };
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value instanceof Deno.KvU64) return { $u64: value.value.toString() };
  if (value instanceof Uint8Array) return { $bytes: [...value] };
  if (value instanceof Date) return { $date: value.toISOString() };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [tag(k), tag(v)]) };
  if (value instanceof Set) return { $set: [...value].map(tag) };
  if (Array.isArray(value)) return value.map(tag);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tag(v)]));
  return value;
}

const entry = (e) => ({ key: tag(e.key), value: tag(e.value), versionstamp: e.versionstamp });
const keys = async (iter) => {
  const out = [];
  for await (const e of iter) out.push(tag(e.key));
  return out;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function crud(kv) {
  const written = {
    str: "héllo ✓",
    num: 3.5,
    big: 12345678901234567890n,
    bytes: new Uint8Array([0, 1, 255]),
    u64: new Deno.KvU64(42n),
    date: new Date(1700000000000),
    map: new Map([["k", { v: [1, 2] }]]),
    set: new Set([1, "a"]),
    obj: { a: [1, { b: null }], c: true },
    undef: undefined,
  };
  const versionstamps = {};
  for (const [name, value] of Object.entries(written)) {
    versionstamps[name] = (await kv.set(["crud", name], value)).versionstamp;
  }
  const read = {};
  for (const name of Object.keys(written)) read[name] = entry(await kv.get(["crud", name]));
  const many = (
    await kv.getMany([
      ["crud", "str"],
      ["crud", "absent"],
      ["from-cellar", "json"],
    ])
  ).map(entry);
  await kv.delete(["crud", "str"]);
  const afterDelete = entry(await kv.get(["crud", "str"]));
  const fromCellar = {};
  for await (const e of kv.list({ prefix: ["from-cellar"] })) fromCellar[e.key[1]] = tag(e.value);
  return { versionstamps, read, many, afterDelete, fromCellar };
}

async function list(kv) {
  const op = kv.atomic();
  for (let i = 0; i < 10; i++) op.set(["l", i], `v${i}`);
  op.set(["l"], "the prefix itself").set(["m", 0], "another prefix");
  await op.commit();
  const out = {
    prefix: await keys(kv.list({ prefix: ["l"] })),
    prefixStart: await keys(kv.list({ prefix: ["l"], start: ["l", 7] })),
    prefixEnd: await keys(kv.list({ prefix: ["l"], end: ["l", 3] })),
    startEnd: await keys(kv.list({ start: ["l", 2], end: ["l", 5] })),
    limit: await keys(kv.list({ prefix: ["l"] }, { limit: 3 })),
    reverse: await keys(kv.list({ prefix: ["l"] }, { reverse: true, limit: 4 })),
    smallBatches: await keys(kv.list({ prefix: ["l"] }, { batchSize: 3 })),
    everything: await keys(kv.list({ prefix: [] })),
  };
  const first = kv.list({ prefix: ["l"] }, { limit: 4 });
  await keys(first);
  out.afterCursor = await keys(kv.list({ prefix: ["l"] }, { cursor: first.cursor, limit: 3 }));
  const back = kv.list({ prefix: ["l"] }, { limit: 4, reverse: true });
  await keys(back);
  out.afterCursorReverse = await keys(
    kv.list({ prefix: ["l"] }, { cursor: back.cursor, reverse: true }),
  );
  return out;
}

async function atomic(kv) {
  const first = await kv.set(["acc", "a"], 10);
  const ok = await kv
    .atomic()
    .check({ key: ["acc", "a"], versionstamp: first.versionstamp })
    .set(["acc", "a"], 11)
    .commit();
  const stale = await kv
    .atomic()
    .check({ key: ["acc", "a"], versionstamp: first.versionstamp })
    .set(["acc", "a"], 12)
    .commit();
  const absentOk = await kv
    .atomic()
    .check({ key: ["acc", "new"], versionstamp: null })
    .set(["acc", "new"], 1)
    .commit();
  const absentFails = await kv
    .atomic()
    .check({ key: ["acc", "new"], versionstamp: null })
    .set(["acc", "new"], 2)
    .commit();
  await kv
    .atomic()
    .sum(["n", "sum"], 5n)
    .sum(["n", "sum"], 7n)
    .min(["n", "min"], 9n)
    .max(["n", "max"], 2n)
    .commit();
  await kv
    .atomic()
    .min(["n", "min"], 4n)
    .max(["n", "max"], 8n)
    .sum(["n", "wrap"], 2n ** 64n - 1n)
    .commit();
  await kv.atomic().sum(["n", "wrap"], 2n).commit();
  const numbers = {};
  for (const name of ["sum", "min", "max", "wrap"])
    numbers[name] = tag((await kv.get(["n", name])).value);
  let sumOnString = null;
  await kv.set(["n", "text"], "not a number");
  try {
    await kv.atomic().sum(["n", "text"], 1n).commit();
  } catch (error) {
    sumOnString = String(error.message ?? error);
  }
  const stamped = await kv
    .atomic()
    .set(["log", kv.commitVersionstamp()], "first")
    .set(["acc", "z"], 0)
    .commit();
  const stamped2 = await kv.atomic().set(["log", kv.commitVersionstamp()], "second").commit();
  const log = [];
  for await (const e of kv.list({ prefix: ["log"] })) log.push(entry(e));
  await kv.set(["exp", "short"], "gone soon", { expireIn: 800 });
  await kv.set(["exp", "long"], "stays", { expireIn: 60_000 });
  const beforeExpiry = entry(await kv.get(["exp", "short"]));
  await sleep(1200);
  const afterExpiry = {
    short: entry(await kv.get(["exp", "short"])),
    long: entry(await kv.get(["exp", "long"])),
    listed: await keys(kv.list({ prefix: ["exp"] })),
  };
  return {
    ok,
    stale,
    absentOk: absentOk.ok,
    absentFails: absentFails.ok,
    value: (await kv.get(["acc", "a"])).value,
    numbers,
    sumOnString,
    stamped,
    stamped2,
    log,
    beforeExpiry,
    afterExpiry,
  };
}

async function watch(kv) {
  await kv.set(["w", "a"], "a0");
  const reader = kv
    .watch([
      ["w", "a"],
      ["w", "b"],
    ])
    .getReader();
  const frames = [];
  const next = async () => frames.push((await reader.read()).value.map(entry));
  await next();
  await kv.set(["w", "b"], "b1");
  await next();
  await kv.set(["w", "a"], "a1", { expireIn: 1000 });
  await next();
  await next();
  await reader.cancel();
  return { frames };
}

async function large(kv) {
  const text = "x".repeat(60 * 1024);
  const bytes = new Uint8Array(60 * 1024).map((_, i) => i % 251);
  await kv.set(["large", "text"], text);
  await kv.set(["large", "bytes"], bytes);
  const readText = (await kv.get(["large", "text"])).value;
  const readBytes = (await kv.get(["large", "bytes"])).value;
  let tooLarge = null;
  try {
    await kv.set(["large", "too"], new Uint8Array(70 * 1024));
  } catch (error) {
    tooLarge = String(error.message ?? error);
  }
  return {
    textOk: readText === text,
    bytesOk:
      readBytes instanceof Uint8Array &&
      readBytes.length === bytes.length &&
      readBytes.every((b, i) => b === bytes[i]),
    tooLarge,
  };
}

async function tokens() {
  const out = {};
  for (const [name, token, path] of [
    ["wrong", "not-a-valid-token-at-all", "/kv"],
    ["right", "tenant-a-secret-token", "/kv"],
    ["otherNamespace", "tenant-a-secret-token", "/kv/tenant-b"],
    ["readOnly", "read-only-secret-token", "/kv/tenant-a"],
  ]) {
    Deno.env.set("DENO_KV_ACCESS_TOKEN", token);
    let kv;
    try {
      kv = await Deno.openKv(`${url}${path}`);
      const read = await kv.get(["t"]);
      const write = await kv.set(["t"], name).then(
        (r) => r.ok,
        (error) => `error: ${error.message}`,
      );
      out[name] = { read: read.value ?? null, write };
    } catch (error) {
      out[name] = { error: String(error.message ?? error) };
    } finally {
      kv?.close();
    }
  }
  return out;
}

async function values(kv) {
  const buffer = new ArrayBuffer(8);
  new Uint8Array(buffer).set([1, 2, 3]);
  const cyclic = { name: "c" };
  cyclic.self = cyclic;
  const written = {
    str: "héllo ✓",
    negzero: -0,
    nan: Number.NaN,
    big: 12345678901234567890n,
    date: new Date(1700000000000),
    regexp: /ab+c/gi,
    map: new Map([["k", { v: 1 }]]),
    set: new Set([1, "a"]),
    bytes: new Uint8Array([1, 2, 3]),
    int32: new Int32Array([-1, 2]),
    buffer,
    nested: { a: [1, { b: new Uint8Array([9]) }], c: new Date(0) },
    sparse: Object.assign(new Array(3), { 0: 1, 2: 3 }),
    error: new RangeError("boom"),
    cyclic,
    u64: new Deno.KvU64(5n),
    undef: undefined,
  };
  for (const [name, value] of Object.entries(written)) await kv.set(["values", name], value);
  return { written: Object.keys(written) };
}

const scenarios = { crud, list, atomic, watch, large, values };
let result;
if (scenario === "tokens") {
  result = await tokens();
} else {
  const kv = await Deno.openKv(url);
  result = {};
  for (const name of scenario.split(",")) result[name] = await scenarios[name](kv);
  kv.close();
}
console.log(JSON.stringify(result));
