import { openKv } from "../src/index.js";
import { compare, type Section } from "./harness.js";
import {
  awaited,
  KEYS,
  type Key,
  populate,
  synchronous,
  type User,
  VALUES,
  writer,
} from "./workload.js";

/** Cellar's memory driver against a plain `Map`, the floor of any in-process store. */
export async function memorySections(log: (step: string) => void): Promise<Section[]> {
  const kv = await openKv(":memory:");
  await populate((key, value) => kv.set(key, value));
  // A Map keyed by tuples has to turn each key into a string, so that cost is part of its figure.
  const map = new Map<string, User>();
  for (let i = 0; i < KEYS.length; i++) map.set(JSON.stringify(KEYS[i]), VALUES[i]!);
  const mapGet = async (key: Key) => map.get(JSON.stringify(key));
  const mapSet = async (key: Key, value: User) => {
    map.set(JSON.stringify(key), value);
  };

  log("memory: point get");
  const get = await compare([
    { name: "Cellar (memory)", batch: awaited((i) => kv.get(KEYS[i]!)) },
    { name: "Map, async, awaited", batch: awaited((i) => mapGet(KEYS[i]!)), target: 0.3 },
    { name: "Map, sync loop", batch: synchronous((i) => map.get(JSON.stringify(KEYS[i]))) },
  ]);
  log("memory: sequential set");
  const set = await compare([
    { name: "Cellar (memory)", batch: awaited(writer((key, value) => kv.set(key, value))) },
    { name: "Map, async, awaited", batch: awaited(writer(mapSet)) },
    {
      name: "Map, sync loop",
      batch: synchronous(writer((key, value) => map.set(JSON.stringify(key), value))),
    },
  ]);
  await kv.close();
  return [
    { title: "Memory: sequential point get", rows: get },
    { title: "Memory: sequential set", rows: set },
  ];
}
