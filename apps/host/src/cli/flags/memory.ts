// -m [size=]n[K|M|G|T]: guest RAM; a plain number is MiB (as in QEMU).
import { z } from "zod";
import { MAX_MEMORY_BYTES, MIB, MIN_MEMORY_BYTES } from "../../config/vm-config";
import { checked, requireValue, type FlagModule } from "../flag";
import { UsageError } from "../usage-error";

export const flag = "-m";
export const syntax = "[size=]n[K|M|G|T] (MiB when no suffix, 16M..256G, whole MiB)";
export const schema = z
  .number()
  .int()
  .min(MIN_MEMORY_BYTES, "less than 16 MiB")
  .max(MAX_MEMORY_BYTES, "more than 256 GiB")
  .multipleOf(MIB, "not a whole number of MiB");

const UNIT: Record<string, number> = {
  K: 1024,
  M: MIB,
  G: 1024 * MIB,
  T: 1024 * 1024 * MIB,
};

export function parse(value: string | null): number {
  const text = requireValue(flag, syntax, value);
  const match = /^(?:size=)?([0-9]+)([KMGTkmgt]?)(?:i?B)?$/.exec(text);
  if (match === null) throw UsageError.expected(flag, syntax, text, "not a size");
  const [, digits = "", suffix = ""] = match;
  const unit = suffix === "" ? MIB : (UNIT[suffix.toUpperCase()] ?? MIB);
  return checked({ flag, syntax, schema }, text, Number(digits) * unit);
}

export function format(bytes: number): string {
  return bytes % (1024 * MIB) === 0 ? `${bytes / (1024 * MIB)}G` : `${bytes / MIB}M`;
}

export const memory: FlagModule<number> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "guest memory (default 256M)",
};
