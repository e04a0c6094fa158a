/** Builds a test page with Vite, as the browser tests load it (React's development build). */
import { build, defaultClientConditions } from "vite";

/** Builds the page whose `index.html` is in `root` into `outDir`. */
export async function buildVitePage(root: string, outDir: string): Promise<void> {
  await build({
    root,
    configFile: false,
    logLevel: "silent",
    mode: "development",
    // The package's "imports" point browsers at the built dist/; this condition picks src/.
    resolve: { conditions: ["cellar-source", ...defaultClientConditions] },
    build: { outDir, emptyOutDir: true, minify: false, target: "es2022" },
  });
}
