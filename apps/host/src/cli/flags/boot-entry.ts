// -boot-entry linux64|pvh (Virga's own flag): which kernel entry to use.
// linux64 is what Linux's vmlinux expects (64-bit, boot_params in RSI); pvh
// is the 32-bit PVH entry from the ELF note, the one QEMU uses.
import { z } from "zod";
import { requireValue, type FlagModule } from "../flag";
import { UsageError } from "../usage-error";

export const flag = "-boot-entry";
export const syntax = "linux64|pvh";
export const schema = z.enum(["linux64", "pvh"]);
export type BootEntry = z.infer<typeof schema>;

export function parse(value: string | null): BootEntry {
  const text = requireValue(flag, syntax, value);
  const result = schema.safeParse(text);
  if (!result.success) throw UsageError.expected(flag, syntax, text, "unknown entry");
  return result.data;
}

export function format(value: BootEntry): string {
  return value;
}

export const bootEntry: FlagModule<BootEntry> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "kernel entry: linux64 (default) or pvh",
};
