// -S: build the VM and start its vCPU threads paused; QMP reports
// "prelaunch" until `cont`.
import { z } from "zod";
import { UsageError } from "../usage-error";
import type { FlagModule } from "../flag";

export const flag = "-S";
export const syntax = "-S (no value)";
export const schema = z.literal(true);

export function parse(value: string | null): true {
  if (value !== null) throw UsageError.expected(flag, syntax, value, "takes no value");
  return true;
}

export function format(): null {
  return null;
}

export const startPaused: FlagModule<true> = {
  flag,
  syntax,
  arity: "none",
  repeatable: false,
  schema,
  parse,
  format,
  help: "start paused (QMP status prelaunch) until QMP cont",
};
