// -name [guest=]<name>: a label for the VM (logs, the daemon's listings).
import { z } from "zod";
import { checked, requireValue, type FlagModule } from "../flag";

export const flag = "-name";
export const syntax = "[guest=]<name>";
export const schema = z.string().min(1, "empty name").max(256, "longer than 256 characters");

export function parse(value: string | null): string {
  const text = requireValue(flag, syntax, value);
  const name = text.startsWith("guest=") ? text.slice(6) : text;
  return checked({ flag, syntax, schema }, text, name);
}

export function format(value: string): string {
  return value.startsWith("guest=") ? `guest=${value}` : value;
}

export const nameFlag: FlagModule<string> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "VM name",
};
