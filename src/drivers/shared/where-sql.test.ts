import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { floorDouble } from "./where-sql.js";

describe("floorDouble", () => {
  it("is the greatest double not above the integer", () => {
    const integers = fc.oneof(
      fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
      fc.bigInt({ min: -(10n ** 400n), max: 10n ** 400n }),
      fc.integer({ min: -60, max: 60 }).map((k) => (k < 0 ? -1n : 1n) * 2n ** BigInt(Math.abs(k))),
      fc
        .tuple(fc.integer({ min: 53, max: 1100 }), fc.integer({ min: -2, max: 2 }))
        .map(([k, d]) => 2n ** BigInt(k) + BigInt(d)),
    );
    fc.assert(
      fc.property(integers, (n) => {
        const floor = floorDouble(n);
        if (floor === Number.NEGATIVE_INFINITY) {
          expect(n < -BigInt(Number.MAX_VALUE)).toBe(true);
          return;
        }
        expect(BigInt(floor) <= n).toBe(true);
        // The next double up is above n (or n is beyond every finite double).
        const up = floor === Number.MAX_VALUE ? Number.POSITIVE_INFINITY : nextUp(floor);
        if (Number.isFinite(up)) expect(BigInt(up) > n).toBe(true);
      }),
    );
  });

  it("is exact where the integer is a double", () => {
    for (const x of [0, 1, -1, 2 ** 53, -(2 ** 53), 2 ** 64, Number.MAX_VALUE, -Number.MAX_VALUE])
      expect(floorDouble(BigInt(x))).toBe(x);
    expect(floorDouble(2n ** 53n + 1n)).toBe(2 ** 53);
    expect(floorDouble(-(2n ** 53n) - 1n)).toBe(-(2 ** 53) - 2);
    expect(floorDouble(2n ** 1024n)).toBe(Number.MAX_VALUE);
    expect(floorDouble(-(2n ** 1024n))).toBe(Number.NEGATIVE_INFINITY);
  });
});

function nextUp(x: number): number {
  if (Number.isInteger(x) && Math.abs(x) < 2 ** 53) return x + 1;
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  view.setBigUint64(0, x > 0 ? bits + 1n : bits - 1n);
  return view.getFloat64(0);
}
