/** True for the range `[key, key + 0x00)`, which holds exactly `key`: drivers answer it with a point lookup. */
export function isPoint(start: Uint8Array, end: Uint8Array): boolean {
  const n = start.length;
  if (end.length !== n + 1 || end[n] !== 0) return false;
  for (let i = n - 1; i >= 0; i--) if (start[i] !== end[i]) return false;
  return true;
}
