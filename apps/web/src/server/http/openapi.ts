// The OpenAPI description of the portal's HTTP endpoints: the QMP gateway
// and every tRPC procedure as plain HTTP (GET ?input= for queries, POST JSON
// for mutations), with input schemas derived from the routers' zod schemas.
import { z } from "zod";
import { appRouter } from "../trpc/root";

type JsonSchema = Record<string, unknown>;

/** The parts of zod's schema definitions read here (the same in both of zod's builds). */
interface ZodDef {
  typeName?: string;
  checks?: { kind: string; value?: number; regex?: RegExp }[];
  values?: unknown[];
  value?: unknown;
  /** ZodArray's element. */
  type?: z.ZodTypeAny;
  valueType?: z.ZodTypeAny;
  innerType?: z.ZodTypeAny;
  /** ZodEffects' inner schema. */
  schema?: z.ZodTypeAny;
  shape?: () => Record<string, z.ZodTypeAny>;
}

/**
 * The subset of zod the routers use, as JSON Schema. Schemas are told apart
 * by their definition's `typeName`, not `instanceof`: inputs shared with
 * virgad (apps/host, CommonJS) are built by zod's CJS build, whose classes
 * differ from this ES module's.
 */
export function toJsonSchema(schema: z.ZodTypeAny): JsonSchema {
  const def = schema._def as ZodDef;
  const checks = def.checks ?? [];
  const inner = (child: z.ZodTypeAny | undefined): JsonSchema =>
    child === undefined ? {} : toJsonSchema(child);
  switch (def.typeName) {
    case "ZodString": {
      const out: JsonSchema = { type: "string" };
      for (const check of checks) {
        if (check.kind === "min") out.minLength = check.value;
        if (check.kind === "max") out.maxLength = check.value;
        if (check.kind === "regex") out.pattern = check.regex?.source;
        if (check.kind === "url") out.format = "uri";
      }
      return out;
    }
    case "ZodNumber": {
      const out: JsonSchema = { type: checks.some((c) => c.kind === "int") ? "integer" : "number" };
      for (const check of checks) {
        if (check.kind === "min") out.minimum = check.value;
        if (check.kind === "max") out.maximum = check.value;
      }
      return out;
    }
    case "ZodBoolean":
      return { type: "boolean" };
    case "ZodEnum":
      return { type: "string", enum: def.values };
    case "ZodLiteral":
      return { const: def.value };
    case "ZodArray":
      return { type: "array", items: inner(def.type) };
    case "ZodRecord":
      return { type: "object", additionalProperties: inner(def.valueType) };
    case "ZodOptional":
    case "ZodNullable":
      return inner(def.innerType);
    case "ZodEffects":
      return inner(def.schema);
    case "ZodObject": {
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const [key, value] of Object.entries(def.shape?.() ?? {})) {
        properties[key] = toJsonSchema(value);
        if (!value.isOptional()) required.push(key);
      }
      return { type: "object", properties, ...(required.length > 0 ? { required } : {}) };
    }
    default:
      return {};
  }
}

interface ProcedureDef {
  type: "query" | "mutation" | "subscription";
  inputs: z.ZodTypeAny[];
}

function procedures(): [string, ProcedureDef][] {
  const record = appRouter._def.procedures as unknown as Record<string, { _def: ProcedureDef }>;
  return Object.entries(record).map(([path, procedure]) => [path, procedure._def]);
}

const errorSchema = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { code: { type: "string" }, message: { type: "string" } },
    },
  },
};

export function openApiDocument(serverUrl: string): JsonSchema {
  const paths: Record<string, unknown> = {
    "/api/v1/vms/{id}/qmp": {
      post: {
        summary: "Send one QMP command to a VM; the response body is exactly the VM's QMP reply",
        tags: ["gateway"],
        parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["execute"],
                properties: { execute: { type: "string" }, arguments: { type: "object" } },
                additionalProperties: false,
              },
              example: { execute: "query-status" },
            },
          },
        },
        responses: {
          "200": {
            description: 'The VM\'s QMP reply: {"return": ...} or {"error": {"class", "desc"}}',
            content: { "application/json": { schema: { type: "object" } } },
          },
          "400": {
            description: "Bad input; the message names the field",
            content: { "application/json": { schema: errorSchema } },
          },
          "401": { description: "No or wrong credentials" },
          "403": {
            description:
              "A command not in the raw QMP allow-list, a role too low for it, a host path or address it may not name, or a failed CSRF check; the message names the command or field",
            content: { "application/json": { schema: errorSchema } },
          },
          "404": { description: "No such VM" },
        },
      },
    },
  };
  for (const [path, def] of procedures()) {
    if (def.type === "subscription") continue;
    const input = def.inputs[0];
    const schema = input === undefined ? undefined : toJsonSchema(input);
    const response = {
      "200": {
        description: 'tRPC result envelope: {"result": {"data": ...}}',
        content: { "application/json": { schema: { type: "object" } } },
      },
      "400": {
        description: "Bad input: error.message names the field",
        content: { "application/json": { schema: { type: "object" } } },
      },
      "401": { description: "Not signed in / no valid token" },
      "403": { description: "Role too low, or CSRF check failed" },
    };
    const tag = path.split(".")[0];
    paths[`/api/trpc/${path}`] =
      def.type === "query"
        ? {
            get: {
              summary: `tRPC query ${path}`,
              tags: [tag],
              parameters:
                schema === undefined
                  ? []
                  : [
                      {
                        name: "input",
                        in: "query",
                        required: false,
                        description: "JSON-encoded input",
                        content: { "application/json": { schema } },
                      },
                    ],
              responses: response,
            },
          }
        : {
            post: {
              summary: `tRPC mutation ${path}`,
              tags: [tag],
              ...(schema === undefined
                ? {}
                : { requestBody: { required: true, content: { "application/json": { schema } } } }),
              responses: response,
            },
          };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Virga portal API",
      version: "0.1.0",
      description:
        "Every portal action as plain HTTP. Authenticate with `Authorization: Bearer virga_...` (an API token from the Tokens page). Browser sessions must also send the x-csrf-token header on POST.",
    },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
    security: [{ bearer: [] }],
    paths,
  };
}
