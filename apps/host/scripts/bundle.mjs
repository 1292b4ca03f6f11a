// Part of `npm run build`: bundles the VM control plane (QMP server) and
// everything it loads into one file per entry: dist/vmm-control.cjs, which
// the native virga-vmm starts beside a VM as its companion, and
// dist/control-host.cjs, the control-plane host virgad runs for many VMs.
// One file to read and compile instead of ~40 modules is most of the
// JavaScript share of QMP's start. The native addon stays external.
import { buildSync } from "esbuild";
import path from "node:path";
import { fileURLToPath } from "node:url";

const hostDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
for (const [entry, out] of [
  ["control-plane-entry.js", "vmm-control.cjs"],
  ["control-host-entry.js", "control-host.cjs"],
]) {
  buildSync({
    entryPoints: [path.join(hostDir, "dist", "src", "vmm", entry)],
    outfile: path.join(hostDir, "dist", out),
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    external: ["@virga/native"],
    minifyWhitespace: true,
    legalComments: "none",
    logLevel: "warning",
  });
}
