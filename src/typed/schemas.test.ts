import { type } from "arktype";
import * as v from "valibot";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Kv } from "../core/kv.js";
import { openKv } from "../open.js";
import {
  canonicalJson,
  contentHash,
  getSchema,
  jsonSchemaOf,
  normalizeIssues,
  storeSchemas,
  validateWith,
} from "./schemas.js";
import { defineStore } from "./store.js";

describe("canonical JSON and content hashes", () => {
  it("sorts keys at every level and drops undefined fields", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
    expect(canonicalJson([undefined, "x"])).toBe('[null,"x"]');
  });

  it("hashes equal documents equally, whatever their key order", () => {
    expect(contentHash({ a: 1, b: [1, 2] })).toBe(contentHash({ b: [1, 2], a: 1 }));
    expect(contentHash({ a: 1 })).not.toBe(contentHash({ a: 2 }));
    expect(contentHash({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("JSON Schema export", () => {
  const expected = {
    type: "object",
    properties: { name: { type: "string" }, age: { type: "number" } },
    required: ["name", "age"],
  };

  it("exports zod, valibot and arktype schemas without their dialect keyword", () => {
    const schemas = [
      z.object({ name: z.string(), age: z.number() }),
      v.object({ name: v.string(), age: v.number() }),
      type({ name: "string", age: "number" }),
    ];
    for (const schema of schemas) {
      const exported = jsonSchemaOf(schema);
      expect(exported).toMatchObject({ type: "object", properties: expected.properties });
      expect(exported.$schema).toBeUndefined();
    }
  });

  it("exports zod's input and output shapes separately", () => {
    const schema = z.object({ n: z.string().transform(Number) });
    expect(jsonSchemaOf(schema, "input")).toMatchObject({ properties: { n: { type: "string" } } });
  });

  it("describes a schema it cannot export", () => {
    const opaque = {
      "~standard": {
        version: 1 as const,
        vendor: "acme",
        validate: (value: unknown) => ({ value }),
      },
    };
    expect(jsonSchemaOf(opaque)).toEqual({ description: "acme schema (no JSON Schema export)" });
  });
});

describe("issues", () => {
  it("normalises Standard Schema issues to { path, message }", () => {
    expect(
      normalizeIssues([
        { message: "bad", path: ["a", 0, { key: "b" }, Symbol.for("s")] },
        { message: "root" },
      ]),
    ).toEqual([
      { path: ["a", 0, "b", "Symbol(s)"], message: "bad" },
      { path: [], message: "root" },
    ]);
  });

  it("validates synchronously when the schema does", () => {
    expect(validateWith(z.number(), 1)).toEqual({ ok: true, value: 1 });
    expect(
      validateWith(
        z.number().refine(async () => true),
        1,
      ),
    ).toBeInstanceOf(Promise);
  });
});

describe("the schema registry", () => {
  let kv: Kv;
  beforeEach(async () => {
    kv = await openKv();
  });
  afterEach(() => kv.close());

  it("is a reserved namespace, shared by every namespace of the database", async () => {
    const prefs = defineStore(kv.namespace("tenant-a"), "prefs", z.object({ a: z.string() }), {
      jsonSchema: { type: "object", title: "given" },
    });
    await prefs.set("x", { a: "1" });
    expect(prefs.schemaHash).toBe(
      contentHash({ jsonSchema: { type: "object", title: "given" }, version: 1 }),
    );
    expect(await getSchema(kv, prefs.schemaHash)).toMatchObject({
      vendor: "zod",
      version: 1,
      jsonSchema: { title: "given" },
    });
    expect(await storeSchemas(kv.namespace("tenant-b"), "prefs")).toHaveLength(1);
    expect(await kv.count({ prefix: ["schema"] })).toBe(0);
    expect(() => kv.namespace("$schemas")).toThrow(/reserved|"\$"/);
  });

  it("gives a new version a new hash even when the JSON Schema is the same", () => {
    const schema = z.object({ a: z.string() });
    expect(defineStore(kv, "one", schema).schemaHash).not.toBe(
      defineStore(kv, "one", schema, { version: 2 }).schemaHash,
    );
    expect(defineStore(kv, "one", schema).schemaHash).toBe(
      defineStore(kv, "two", schema).schemaHash,
    );
  });

  it("refuses a malformed hash", async () => {
    await expect(getSchema(kv, "nope")).rejects.toThrow(/64 hex digits/);
  });
});
