/** HTTP load from wrk, an external generator, so that it costs the measured server little CPU. */
import { execFile, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Latency } from "./harness.js";

const WRK = process.env.WRK ?? "wrk";

export const WRK_SKIPPED = `skipped: wrk not found (install it, or set WRK to its path)`;

export function wrkAvailable(): boolean {
  return spawnSync(WRK, ["-v"]).error === undefined;
}

// wrk reports through this script so that its figures need no parsing of human-readable text.
const REPORT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"us":%d,"p50":%d,"p99":%d,"failed":%d,"status":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
`;

let scripts = 0;

export interface LoadResult {
  readonly ops: number;
  readonly latency: Latency;
}

/**
 * A load generator bound to a scratch folder for its script; `requests` is Lua that defines
 * wrk's `request` function, for a mix of requests (default: a GET of the URL).
 */
export function wrk(dir: string, requests = "") {
  const script = join(dir, `report-${scripts++}.lua`);
  writeFileSync(script, requests + REPORT);
  return (url: string, connections: number, seconds: number): Promise<LoadResult> =>
    new Promise((resolve, reject) => {
      // One thread leaves the other core to the server; it still far outruns a Node server.
      const args = [
        "-t1",
        `-c${connections}`,
        `-d${seconds}s`,
        "--timeout",
        "5s",
        "-s",
        script,
        url,
      ];
      execFile(WRK, args, (error, stdout) => {
        if (error) return reject(error);
        const line = stdout.trim().split("\n").at(-1)!;
        const report = JSON.parse(line) as Record<string, number>;
        if (report.failed! > 0 || report.status! > 0) {
          return reject(new Error(`wrk ${url}: ${report.failed} failed, ${report.status} non-2xx`));
        }
        resolve({
          ops: (report.requests! * 1e6) / report.us!,
          latency: { p50: report.p50! / 1000, p99: report.p99! / 1000 },
        });
      });
    });
}
