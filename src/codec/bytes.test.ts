import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareBytes,
  fromBase64Url,
  fromHex,
  latin1Decode,
  latin1Encode,
  toBase64Url,
  toHex,
  utf8Decode,
  utf8Encode,
  utf8EncodeInto,
  utf8Length,
} from "./bytes.js";

// Buffer is the reference here: these helpers replace it, byte for byte.
describe("byte helpers", () => {
  it("encode and decode base64url as Buffer does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = toBase64Url(bytes);
        expect(text).toBe(Buffer.from(bytes).toString("base64url"));
        expect(fromBase64Url(text)).toEqual(bytes);
        expect(fromBase64Url(Buffer.from(bytes).toString("base64"))).toEqual(bytes);
      }),
    );
    expect(fromBase64Url("a b")).toBeNull();
  });

  it("encode and decode hex and latin1", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20_000 }), (bytes) => {
        expect(toHex(bytes)).toBe(Buffer.from(bytes).toString("hex"));
        expect(fromHex(toHex(bytes).toUpperCase())).toEqual(bytes);
        expect(latin1Decode(bytes)).toBe(Buffer.from(bytes).toString("latin1"));
        expect(latin1Encode(latin1Decode(bytes))).toEqual(bytes);
      }),
      { numRuns: 50 },
    );
    expect(fromHex("0g")).toBeNull();
    expect(fromHex("abc")).toBeNull();
  });

  it("encode and measure UTF-8 as Buffer does, lone surrogates included", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 100 }), (text) => {
        const expected = Buffer.from(text, "utf8");
        expect(utf8Encode(text)).toEqual(new Uint8Array(expected));
        expect(utf8Length(text)).toBe(expected.length);
        const target = new Uint8Array(text.length * 3 + 5);
        expect(target.subarray(2, 2 + utf8EncodeInto(text, target, 2))).toEqual(
          new Uint8Array(expected),
        );
        expect(utf8Decode(expected)).toBe(expected.toString("utf8"));
      }),
    );
  });

  it("compare as Buffer.compare does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (a, b) => {
        expect(compareBytes(a, b)).toBe(Buffer.compare(a, b));
      }),
    );
  });
});
