// Where things are, from the compiled test files (apps/host/dist/test/...).
import path from "node:path";

/** The repository root (this file runs as apps/host/dist/test/support/paths.js). */
export const repoRoot = path.resolve(__dirname, "..", "..", "..", "..", "..");
export const hostDir = path.join(repoRoot, "apps", "host");
export const nativeDir = path.join(repoRoot, "native");
/** The native virga-vmm executable that tests start directly. */
export const vmmBin = path.join(nativeDir, "build", "Release", "virga-vmm");
export const nativeAddon = path.join(nativeDir, "build", "Release", "virga_native.node");
export const probeGuest = path.join(nativeDir, "probe-guest", "build", "probe.elf");
