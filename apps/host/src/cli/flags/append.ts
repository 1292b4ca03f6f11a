// -append "<cmdline>": the guest kernel command line. The VMM appends one
// virtio_mmio.device= entry per microvm slot to it.
import { z } from "zod";
import { checked, requireValue, type FlagModule } from "../flag";

export const flag = "-append";
export const syntax = '"<kernel command line>"';
// The Linux boot protocol caps the command line (2048 bytes on x86 by default).
export const MAX_CMDLINE = 2048;
export const schema = z.string().max(MAX_CMDLINE, `longer than ${MAX_CMDLINE} bytes`);

export function parse(value: string | null): string {
  const text = requireValue(flag, syntax, value);
  return checked({ flag, syntax, schema }, text, text);
}

export function format(value: string): string {
  return value;
}

export const append: FlagModule<string> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "kernel command line",
};
