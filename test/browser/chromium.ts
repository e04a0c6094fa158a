/** Debian's Chromium as the browser tests drive it (flags from DESIGN.md, plus no QUIC or sync). */
import { type Browser, chromium } from "playwright-core";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-quic",
  "--disable-sync",
];

/** `extra` flags go after the usual ones (a test that needs a feature off says why). */
export function launchChromium(extra: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: [...FLAGS, ...extra] });
}
