import { describe, expect, it } from "vitest";
import { z } from "zod";
import { KvError } from "../errors.js";
import {
  boolean,
  date,
  dateWithTimeZone,
  id,
  integer,
  json,
  real,
  select,
  tags,
  text,
  validateColumn,
} from "./columns.js";

const issuesOf = async (result: unknown) => {
  const settled = (await result) as { ok: boolean; issues?: unknown };
  expect(settled.ok).toBe(false);
  return settled.issues;
};

describe("column types", () => {
  it("text takes strings only", async () => {
    expect(validateColumn(text(), "hi")).toEqual({ ok: true, value: "hi" });
    expect(await issuesOf(validateColumn(text(), 3))).toEqual([
      { path: [], message: "expected a string, got 3" },
    ]);
  });

  it("integer takes safe integers, real takes finite numbers", async () => {
    expect(validateColumn(integer(), 42)).toEqual({ ok: true, value: 42 });
    for (const bad of [1.5, Number.NaN, 2 ** 53, "1"])
      await issuesOf(validateColumn(integer(), bad));
    expect(validateColumn(real(), 1.5)).toEqual({ ok: true, value: 1.5 });
    for (const bad of [Number.POSITIVE_INFINITY, Number.NaN, "1.5"])
      await issuesOf(validateColumn(real(), bad));
  });

  it("boolean takes true and false", async () => {
    expect(validateColumn(boolean(), false)).toEqual({ ok: true, value: false });
    await issuesOf(validateColumn(boolean(), 0));
  });

  it("date takes an instant with a valid IANA time zone", async () => {
    const when = new Date("2025-03-01T10:00:00.000Z");
    expect(validateColumn(date(), { date: when, timeZone: "Europe/Paris" })).toEqual({
      ok: true,
      value: { date: when, timeZone: "Europe/Paris" },
    });
    expect(
      await issuesOf(validateColumn(date(), { date: when, timeZone: "Mars/Olympus" })),
    ).toEqual([{ path: ["timeZone"], message: 'expected an IANA time zone, got "Mars/Olympus"' }]);
    await issuesOf(validateColumn(date(), { date: new Date(Number.NaN), timeZone: "UTC" }));
    await issuesOf(validateColumn(date(), when));
  });

  it("date has a JSON form and reads it back", () => {
    const column = date();
    const value = dateWithTimeZone("2025-03-01T10:00:00.000Z", "Asia/Tokyo");
    const wire = column.toJSON(value);
    expect(wire).toEqual({ date: "2025-03-01T10:00:00.000Z", timeZone: "Asia/Tokyo" });
    expect(column.fromJSON(wire)).toEqual(value);
    expect(() => dateWithTimeZone("not a date", "UTC")).toThrow(KvError);
    expect(dateWithTimeZone(0).timeZone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
  });

  it("select takes one of its options", async () => {
    const column = select({ options: ["light", "dark"] });
    expect(validateColumn(column, "dark")).toEqual({ ok: true, value: "dark" });
    expect(await issuesOf(validateColumn(column, "blue"))).toEqual([
      { path: [], message: 'expected one of "light", "dark", got "blue"' },
    ]);
    expect(column.options).toEqual(["light", "dark"]);
    expect(() => select({ options: [] as unknown as ["a"] })).toThrow(/non-empty array/);
    expect(() => select({ options: ["a", "a"] })).toThrow(/distinct/);
  });

  it("tags takes distinct strings, from its options when given", async () => {
    expect(validateColumn(tags(), ["a", "b"])).toEqual({ ok: true, value: ["a", "b"] });
    const column = tags({ options: ["work", "home"] });
    expect(await issuesOf(validateColumn(column, ["work", "gym", "work", 3]))).toEqual([
      { path: [1], message: '"gym" is not an option' },
      { path: [2], message: '"work" is repeated' },
      { path: [3], message: "expected a string, got 3" },
    ]);
    await issuesOf(validateColumn(column, "work"));
  });

  it("json validates with its Standard Schema", async () => {
    const column = json({ schema: z.object({ size: z.number().int() }) });
    expect(validateColumn(column, { size: 3 })).toEqual({ ok: true, value: { size: 3 } });
    expect(await issuesOf(validateColumn(column, { size: "x" }))).toEqual([
      { path: ["size"], message: expect.any(String) },
    ]);
    expect(() => json({ schema: {} as never })).toThrow(/Standard Schema/);
  });

  it("json with an asynchronous schema validates asynchronously", async () => {
    const column = json({ schema: z.string().refine(async (s) => s.length > 2) });
    const result = validateColumn(column, "ab");
    expect(result).toBeInstanceOf(Promise);
    expect((await result).ok).toBe(false);
  });
});

describe("nullable and default", () => {
  it("null is a value of nullable columns only", async () => {
    expect(validateColumn(text({ nullable: true }), null)).toEqual({ ok: true, value: null });
    expect(await issuesOf(validateColumn(text(), null))).toEqual([
      { path: [], message: "expected a value, got null" },
    ]);
  });

  it("a default value is copied, so a returned default can be mutated", () => {
    const column = json({
      schema: z.object({ list: z.array(z.number()) }),
      default: { list: [1] },
    });
    const first = column.defaultValue()!;
    first.list.push(2);
    expect(column.defaultValue()).toEqual({ list: [1] });
    expect(tags({ default: ["a"] }).defaultValue()).not.toBe(
      tags({ default: ["a"] }).defaultValue(),
    );
  });

  it("a default factory is called on every use", () => {
    let calls = 0;
    const column = tags({ default: () => [`call-${++calls}`] });
    expect(column.defaultValue()).toEqual(["call-1"]);
    expect(column.defaultValue()).toEqual(["call-2"]);
    expect(column.hasDefault).toBe(true);
  });

  it("no default reads as null", () => {
    expect(text().defaultValue()).toBeNull();
    expect(text().hasDefault).toBe(false);
  });

  it("an invalid default is refused when the column is defined", () => {
    expect(() => integer({ default: 1.5 })).toThrow(
      /default of this integer column does not validate/,
    );
    expect(() => select({ options: ["a"], default: "b" as "a" })).toThrow(KvError);
    expect(() => text({ default: null as unknown as string })).toThrow(/null is not a default/);
  });

  it("JSON Schemas describe the JSON form, nullability and constant defaults", () => {
    expect(text({ default: "light" }).jsonSchema).toEqual({ type: "string", default: "light" });
    expect(integer({ nullable: true }).jsonSchema).toEqual({
      anyOf: [{ type: "integer" }, { type: "null" }],
    });
    expect(select({ options: ["a", "b"] }).jsonSchema).toEqual({
      type: "string",
      enum: ["a", "b"],
    });
    expect(tags({ options: ["x"] }).jsonSchema).toEqual({
      type: "array",
      items: { type: "string", enum: ["x"] },
      uniqueItems: true,
    });
    expect(date().jsonSchema).toMatchObject({ type: "object", required: ["date", "timeZone"] });
    expect(json({ schema: z.object({ a: z.string() }) }).jsonSchema).toMatchObject({
      type: "object",
      properties: { a: { type: "string" } },
    });
  });

  it("id() builds an id column, which only tables use", () => {
    expect(id()).toEqual({ kind: "id" });
  });
});
