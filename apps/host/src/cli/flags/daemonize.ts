// -daemonize: detach from the terminal once the VM is up; the parent exits 0
// after the child reports ready (see vmm/daemonize.ts).
import { z } from "zod";
import { UsageError } from "../usage-error";
import type { FlagModule } from "../flag";

export const flag = "-daemonize";
export const syntax = "-daemonize (no value)";
export const schema = z.literal(true);

export function parse(value: string | null): true {
  if (value !== null) throw UsageError.expected(flag, syntax, value, "takes no value");
  return true;
}

export function format(): null {
  return null;
}

export const daemonize: FlagModule<true> = {
  flag,
  syntax,
  arity: "none",
  repeatable: false,
  schema,
  parse,
  format,
  help: "run in the background once the VM has started",
};
