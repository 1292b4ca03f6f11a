// Part of `npm run build`: bundles the VM control plane (QMP server) and
// everything it loads into one file, dist/vmm-control.cjs, which the native
// virga-vmm starts beside each VM with -qmp. One file to read and compile
// instead of ~40 modules is most of the JavaScript share of QMP's start.
// The native addon stays external.
import { buildSync } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const hostDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
buildSync({
  entryPoints: [path.join(hostDir, "dist", "src", "vmm", "control-plane-entry.js")],
  outfile: path.join(hostDir, "dist", "vmm-control.cjs"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["@virga/native"],
  minifyWhitespace: true,
  legalComments: "none",
  logLevel: "warning",
});
