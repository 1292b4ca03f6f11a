// Part of `npm run build`: bundles virga-vmm's compiled entry and everything
// it loads into one file, dist/virga-vmm.cjs. A VM process then reads and
// compiles one file instead of ~40 modules before vm.start(), which is most
// of the JavaScript share of boot time. The native addon stays external.
import { buildSync } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const hostDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
buildSync({
  entryPoints: [path.join(hostDir, "dist", "src", "cli", "main.js")],
  outfile: path.join(hostDir, "dist", "virga-vmm.cjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["@virga/native"],
  minifyWhitespace: true,
  legalComments: "none",
  logLevel: "warning",
});
