// -machine microvm | -machine type=microvm. Only the lightweight machine
// exists so far; the standard (q35) machine is its own issue.
import { z } from "zod";
import { requireValue, type FlagModule } from "../flag";
import { parseItems } from "../options";
import { UsageError } from "../usage-error";

export const flag = "-machine";
export const syntax = "[type=]microvm";
export const schema = z.literal("microvm");
export type Machine = z.infer<typeof schema>;

const NOT_YET = new Set(["q35", "standard", "pc", "virt", "pc-q35"]);

export function parse(value: string | null): Machine {
  const text = requireValue(flag, syntax, value);
  let type: string | null = null;
  for (const item of parseItems(text)) {
    if (item.key === null && type === null) type = item.value;
    else if (item.key === "type" && type === null) type = item.value;
    else {
      const name = item.key ?? item.value;
      throw UsageError.expected(flag, syntax, text, `unknown option '${name}'`);
    }
  }
  if (type === "microvm") return type;
  if (type !== null && NOT_YET.has(type)) {
    throw UsageError.expected(flag, syntax, text, `machine '${type}' is not supported yet`);
  }
  throw UsageError.expected(flag, syntax, text, "unknown machine type");
}

export function format(value: Machine): string {
  return value;
}

export const machine: FlagModule<Machine> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "machine type (microvm; the default)",
};
