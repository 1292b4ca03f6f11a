// File checks for flags that name files, run after parsing so that a typo in
// a path exits with code 2 and the flag named, before any VM is built.
import { statSync } from "node:fs";
import { UsageError } from "./usage-error";

/** The path must exist and be a regular file or a block device. */
export function checkReadableFile(flag: string, syntax: string, path: string): void {
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === "ENOENT" ? "no such file" : `cannot access (${code ?? "error"})`;
    throw UsageError.expected(flag, syntax, path, problem);
  }
  if (!stat.isFile() && !stat.isBlockDevice()) {
    throw UsageError.expected(flag, syntax, path, "not a regular file or block device");
  }
}
