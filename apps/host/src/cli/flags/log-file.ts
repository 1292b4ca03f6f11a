// -D [logfile]: VMM log lines go to logfile, or to stderr when none is given.
import { z } from "zod";
import { checked, type FlagModule } from "../flag";

export const flag = "-D";
export const syntax = "[<log file>]";
/** null = log to stderr. */
export const schema = z.string().min(1).nullable();

export function parse(value: string | null): string | null {
  return checked({ flag, syntax, schema }, value ?? "", value);
}

export function format(value: string | null): string | null {
  return value;
}

export const logFile: FlagModule<string | null> = {
  flag,
  syntax,
  arity: "optional",
  repeatable: false,
  schema,
  parse,
  format,
  help: "write the VMM log to a file (stderr without one)",
};
