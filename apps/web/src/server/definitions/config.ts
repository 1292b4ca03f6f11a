// VM definition configs: validated with the VMM's own schema on the way in,
// errors carrying the field path under `config.`.
import { TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import { vmConfigSchema, type VmConfig } from "@/lib/vm-config";
import { describeZodIssues } from "../trpc/trpc";

export function validateConfig(input: unknown): VmConfig {
  const parsed = vmConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => ({
    ...issue,
    path: ["config", ...issue.path],
  }));
  const error = new ZodError(issues);
  throw new TRPCError({ code: "BAD_REQUEST", message: describeZodIssues(error), cause: error });
}

export function parseStoredConfig(text: string): VmConfig {
  return JSON.parse(text) as VmConfig;
}
