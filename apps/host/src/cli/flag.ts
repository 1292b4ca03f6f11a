// The shape every flag module fills in: its syntax string (shown in errors
// and -help), a zod schema of the parsed value, parse (string → value, pure)
// and format (value → string, for toArgv). Flags with files to check also
// export validate(), which the command line runs after parsing.
import { z } from "zod";
import { UsageError } from "./usage-error";

export interface FlagModule<T> {
  /** As typed on the command line, with its dash: "-smp". */
  readonly flag: string;
  readonly syntax: string;
  /** "none": a switch; "value": always takes the next argument; "optional": takes it unless it is a flag. */
  readonly arity: "none" | "value" | "optional";
  /** -drive and -device may repeat; repeating any other flag is an error. */
  readonly repeatable: boolean;
  readonly schema: z.ZodType<T>;
  /** Turns the argument into a value or throws a UsageError; never touches the file system. */
  parse(value: string | null): T;
  /** The inverse of parse, normalised: parse(format(v)) deep-equals v. */
  format(value: T): string | null;
  readonly help: string;
}

/** Runs a zod schema over a freshly parsed value and turns the first issue into a UsageError. */
export function checked<T>(
  module: Pick<FlagModule<T>, "flag" | "syntax" | "schema">,
  got: string,
  value: unknown,
): T {
  const result = module.schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join(".").toLowerCase()}: ` : "";
  throw UsageError.expected(
    module.flag,
    module.syntax,
    got,
    `${where}${issue?.message ?? "invalid"}`,
  );
}

/** For flags whose argument is required (arity "value"). */
export function requireValue(flag: string, syntax: string, value: string | null): string {
  if (value === null) throw UsageError.expected(flag, syntax, "", "missing value");
  return value;
}

/** A flag whose value is a string, checked by `schema` and kept as typed. */
export function stringFlag(
  flag: string,
  syntax: string,
  schema: z.ZodType<string>,
  help: string,
): FlagModule<string> {
  return {
    flag,
    syntax,
    arity: "value",
    repeatable: false,
    schema,
    parse(value) {
      const text = requireValue(flag, syntax, value);
      return checked({ flag, syntax, schema }, text, text);
    },
    format: (value) => value,
    help,
  };
}

/** A switch: present or absent, never a value. */
export function switchFlag(flag: string, help: string): FlagModule<true> {
  const syntax = `${flag} (no value)`;
  return {
    flag,
    syntax,
    arity: "none",
    repeatable: false,
    schema: z.literal(true),
    parse(value) {
      if (value !== null) throw UsageError.expected(flag, syntax, value, "takes no value");
      return true;
    },
    format: () => null,
    help,
  };
}

/** Any non-empty path. */
export const pathSchema = z.string().min(1, "empty path");
