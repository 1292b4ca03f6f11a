// The stock Debian guest built by test/images/build.sh, or the user's own
// files through VIRGA_GUEST_KERNEL / VIRGA_GUEST_INITRD / VIRGA_GUEST_ROOTFS.
import { existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../support/paths";

const built = path.join(repoRoot, "build", "guests", "linux");

export const linuxGuest = {
  kernel: process.env.VIRGA_GUEST_KERNEL ?? path.join(built, "vmlinux"),
  bzImage: path.join(built, "bzImage"),
  initrd: process.env.VIRGA_GUEST_INITRD ?? path.join(built, "initramfs.cpio.gz"),
  rootfs: process.env.VIRGA_GUEST_ROOTFS ?? path.join(built, "rootfs.ext4"),
};

export const runInL1 = path.join(repoRoot, "apps", "host", "test", "nested", "run-in-l1.sh");

/** Throws naming the missing file (tests fail, never skip). */
export function requireLinuxGuest(): void {
  for (const file of [linuxGuest.kernel, linuxGuest.initrd, linuxGuest.rootfs, runInL1]) {
    if (!existsSync(file))
      throw new Error(`${file} missing: npm install builds the Linux guest images`);
  }
}

/** -kernel, -initrd, -smp, -m and -append for the Debian guest: the flags every VMM here shares. */
export function linuxKernelArgs(options: {
  kernel?: string;
  smp: string;
  mem: string;
  append: string;
}): string[] {
  return [
    "-kernel",
    options.kernel ?? linuxGuest.kernel,
    "-initrd",
    linuxGuest.initrd,
    "-smp",
    options.smp,
    "-m",
    options.mem,
    "-append",
    options.append,
  ];
}
