// `npm start`: until the host daemon and the portal exist, boots the probe
// guest interactively under virga-vmm: its shell on this terminal (serial
// stdio), a QMP socket at data/qmp.sock, a 1 MiB scratch disk at
// data/probe-disk.img as vda.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const data = path.join(root, "data");
const probe = path.join(root, "native", "probe-guest", "build", "probe.elf");
const disk = path.join(data, "probe-disk.img");
const qmp = path.join(data, "qmp.sock");

if (!existsSync(probe)) {
  console.error(`npm start: the probe guest is not built (${probe}); run npm install first`);
  process.exit(1);
}
mkdirSync(data, { recursive: true });
if (!existsSync(disk)) writeFileSync(disk, Buffer.alloc(1024 * 1024));

const args = [
  "-name",
  "probe",
  "-machine",
  "microvm",
  "-kernel",
  probe,
  "-smp",
  "2",
  "-m",
  "128",
  "-append",
  "console=ttyS0",
  "-drive",
  `file=${disk},id=scratch,readonly=off,direct=off`,
  "-device",
  "virtio-blk-device,drive=scratch",
  "-qmp",
  `unix:${qmp},server,nowait`,
  "-serial",
  "stdio",
];
console.error("npm start: booting the probe guest under virga-vmm");
console.error(
  `  QMP:   ncat -U ${path.relative(process.cwd(), qmp)}   (then {"execute":"query-status"})`,
);
console.error("  shell: type help at the probe> prompt; poweroff (or Ctrl-C) ends the VM");
console.error(`  virga-vmm ${args.join(" ")}\n`);

const child = spawn(path.join(root, "native", "build", "Release", "virga-vmm"), args, {
  stdio: "inherit",
});
// Ctrl-C reaches virga-vmm too (same process group); it shuts the VM down.
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal ? 1 : 0));
});
