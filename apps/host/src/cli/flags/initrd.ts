// -initrd <path>: an initial ramdisk loaded beside the kernel.
import { pathSchema, stringFlag } from "../flag";
import { checkReadableFile } from "../files";

export const initrd = stringFlag(
  "-initrd",
  "<path to an initramfs>",
  pathSchema,
  "initial ramdisk",
);

export function validate(path: string): void {
  checkReadableFile(initrd.flag, initrd.syntax, path);
}
