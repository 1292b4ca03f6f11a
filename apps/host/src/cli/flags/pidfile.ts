// -pidfile <path>: the VM process writes its pid there and removes it on exit.
import { z } from "zod";
import { checked, requireValue, type FlagModule } from "../flag";

export const flag = "-pidfile";
export const syntax = "<path>";
export const schema = z.string().min(1, "empty path");

export function parse(value: string | null): string {
  const text = requireValue(flag, syntax, value);
  return checked({ flag, syntax, schema }, text, text);
}

export function format(value: string): string {
  return value;
}

export const pidfile: FlagModule<string> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "write the VM process's pid to a file",
};
