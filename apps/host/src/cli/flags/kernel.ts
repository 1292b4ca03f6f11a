// -kernel <path>: the guest kernel (ELF vmlinux or bzImage). Required.
import { pathSchema, stringFlag } from "../flag";
import { checkReadableFile } from "../files";

export const kernel = stringFlag(
  "-kernel",
  "<path to an ELF vmlinux or bzImage>",
  pathSchema,
  "guest kernel image (required)",
);

export function validate(path: string): void {
  checkReadableFile(kernel.flag, kernel.syntax, path);
}
