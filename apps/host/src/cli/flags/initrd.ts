// -initrd <path>: an initial ramdisk loaded beside the kernel.
import { z } from "zod";
import { checked, requireValue, type FlagModule } from "../flag";
import { checkReadableFile } from "../files";

export const flag = "-initrd";
export const syntax = "<path to an initramfs>";
export const schema = z.string().min(1, "empty path");

export function parse(value: string | null): string {
  const text = requireValue(flag, syntax, value);
  return checked({ flag, syntax, schema }, text, text);
}

export function format(value: string): string {
  return value;
}

export function validate(path: string): void {
  checkReadableFile(flag, syntax, path);
}

export const initrd: FlagModule<string> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "initial ramdisk",
};
