/**
 * The functions a V8 CPU profile (`node --cpu-prof`) spent the most self time in.
 *
 *   npx tsx bench/profile-top.ts <file.cpuprofile> [count]
 *
 * Shares are of the time the process was busy: idle and garbage-collector samples are listed
 * apart, since only the rest points at code.
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const APART = new Set(["(idle)", "(garbage collector)", "(program)"]);

const path = (url: string) =>
  url.startsWith("file://") ? relative(process.cwd(), new URL(url).pathname) : url;

/**
 * `function file:line`, paths relative to the working directory. TypeScript files go without a
 * line: tsx compiles them, and the profile's lines are those of its output.
 */
function label({ callFrame: { functionName, url, lineNumber } }: ProfileNode): string {
  const name = functionName || "(anonymous)";
  if (!url) return name;
  return url.endsWith(".ts") ? `${name} ${path(url)}` : `${name} ${path(url)}:${lineNumber + 1}`;
}

/** Where a function lives: a source file of the project, an npm package, or Node itself. */
function area({ callFrame: { functionName, url } }: ProfileNode): string {
  if (!url) return APART.has(functionName) ? functionName : "(native)";
  if (url.startsWith("node:")) return "node internals";
  const file = path(url);
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  return pkg ? pkg[1]! : file;
}

/** Microseconds of self time per key of a node. */
function selfTimes(profile: Profile, keyOf: (node: ProfileNode) => string): Map<string, number> {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const times = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const key = keyOf(nodes.get(id)!);
    times.set(key, (times.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return times;
}

const ms = (us: number) => `${(us / 1000).toFixed(0)} ms`;

/** The `count` largest entries, as shares of the busy time. */
function top(times: Map<string, number>, count: number): string[] {
  const busy = [...times].filter(([key]) => !APART.has(key));
  const busyTotal = busy.reduce((sum, [, us]) => sum + us, 0);
  return busy
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, us]) => `${((us / busyTotal) * 100).toFixed(1).padStart(5)}%  ${key}`);
}

const [file, count = "25"] = process.argv.slice(2);
if (!file) throw new Error("usage: profile-top.ts <file.cpuprofile> [count]");
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const functions = selfTimes(profile, label);
const total = [...functions.values()].reduce((a, b) => a + b, 0);
const apart = [...APART].filter((key) => functions.has(key));
const busyTotal = total - apart.reduce((sum, key) => sum + functions.get(key)!, 0);

console.log(`${file}: ${ms(total)} sampled, ${ms(busyTotal)} busy`);
for (const key of apart) {
  console.log(`  ${key}: ${((functions.get(key)! / total) * 100).toFixed(1)}% of all samples`);
}
console.log("\nSelf time by function (share of busy time)");
for (const line of top(functions, Number(count))) console.log(line);
console.log("\nSelf time by file or package");
for (const line of top(selfTimes(profile, area), 12)) console.log(line);
