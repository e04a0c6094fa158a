/**
 * Builds the admin UI into `dist/ui/` (`npm run build:ui`, part of `npm run build`), which the
 * server serves at `/` (see `src/server/ui.ts`).
 */
import { fileURLToPath } from "node:url";
import { defaultClientConditions, defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  logLevel: "warn",
  // The package's "imports" point browsers at the built dist/; this condition picks src/.
  resolve: { conditions: ["cellar-source", ...defaultClientConditions] },
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: fileURLToPath(new URL("../../dist/ui", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    // The CSP allows no inline script or style: every asset is a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
