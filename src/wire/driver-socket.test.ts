import { describe, expect, it } from "vitest";
import {
  callFrame,
  decodeCallFrame,
  decodeServerFrame,
  errorFrame,
  isDriverOp,
  READY_FRAME,
  resultFrame,
} from "./driver-socket.js";

describe("driver socket frames", () => {
  it("round-trips a call, its result and its error", () => {
    expect(decodeCallFrame(callFrame(7, "read", '{"ranges":[]}'))).toEqual({
      id: 7,
      op: "read",
      body: { ranges: [] },
    });
    expect(decodeServerFrame(resultFrame(7, '{"count":3}'))).toEqual({
      id: 7,
      result: { count: 3 },
    });
    expect(
      decodeServerFrame(errorFrame(8, { error: { code: "FORBIDDEN", message: "no" } })),
    ).toEqual({ id: 8, error: { code: "FORBIDDEN", message: "no" } });
    expect(decodeServerFrame(READY_FRAME)).toEqual({ ready: true });
  });

  it("refuses a call frame without an integer id ≥ 0 as INVALID_REQUEST", () => {
    for (const text of ["", "nope", "null", "[]", "5", '{"op":"read"}', '{"id":-1}', '{"id":1.5}'])
      expect(() => decodeCallFrame(text)).toThrow(
        expect.objectContaining({ code: "INVALID_REQUEST" }),
      );
  });

  it("leaves op and body to the server, which answers an unknown op on its own", () => {
    expect(decodeCallFrame('{"id":1,"op":5,"body":"x"}')).toEqual({ id: 1, op: 5, body: "x" });
    expect(isDriverOp("read")).toBe(true);
    expect(isDriverOp("drop")).toBe(false);
    expect(isDriverOp(5)).toBe(false);
  });

  it("refuses a server frame that is no answer as UNAVAILABLE", () => {
    for (const text of [
      "",
      "{}",
      '{"id":1}',
      '{"id":"1","result":1}',
      '{"id":1,"error":{"code":1}}',
    ])
      expect(() => decodeServerFrame(text)).toThrow(
        expect.objectContaining({ code: "UNAVAILABLE" }),
      );
  });
});
