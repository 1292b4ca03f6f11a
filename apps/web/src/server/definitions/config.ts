// VM definition configs and NICs: validated on the way in, errors carrying
// the field path under `config.` / `nics.`.
import { TRPCError } from "@trpc/server";
import { ZodError, type ZodIssue } from "zod";
import {
  definitionNicsSchema,
  nicPlaces,
  nicSlotsLeft,
  type DefinitionNic,
} from "@/lib/definition-nics";
import { vmConfigSchema, type VmConfig } from "@/lib/vm-config";
import { describeZodIssues } from "../trpc/trpc";

function badInput(issues: ZodIssue[], prefix: string): TRPCError {
  const error = new ZodError(issues.map((issue) => ({ ...issue, path: [prefix, ...issue.path] })));
  return new TRPCError({ code: "BAD_REQUEST", message: describeZodIssues(error), cause: error });
}

export function validateConfig(input: unknown): VmConfig {
  const parsed = vmConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw badInput(parsed.error.issues, "config");
}

/** A definition's NICs, which must fit in the NIC slots the config leaves. */
export function validateNics(input: unknown, config: VmConfig): DefinitionNic[] {
  const parsed = definitionNicsSchema.safeParse(input);
  if (!parsed.success) throw badInput(parsed.error.issues, "nics");
  const left = nicSlotsLeft(config);
  if (parsed.data.length > left) {
    throw badInput(
      [
        {
          code: "custom",
          path: [],
          message: `at most ${left} NIC${left === 1 ? "" : "s"} (${nicPlaces(config)}, and the config leaves ${left})`,
        },
      ],
      "nics",
    );
  }
  return parsed.data;
}

export function parseStoredConfig(text: string): VmConfig {
  return JSON.parse(text) as VmConfig;
}

export function parseStoredNics(text: string): DefinitionNic[] {
  return JSON.parse(text) as DefinitionNic[];
}
