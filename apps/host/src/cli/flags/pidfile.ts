// -pidfile <path>: the VM process writes its pid there and removes it on exit.
import { pathSchema, stringFlag } from "../flag";

export const pidfile = stringFlag(
  "-pidfile",
  "<path>",
  pathSchema,
  "write the VM process's pid to a file",
);
