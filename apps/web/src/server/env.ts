// The portal's environment, validated once. Everything the portal reads from
// process.env goes through here.
import { z } from "zod";

const schema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("production"),
  VIRGA_PORTAL_HOST: z.string().min(1).default("127.0.0.1"),
  VIRGA_PORTAL_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Set when the portal is served over https: cookies get `Secure`. */
  VIRGA_SECURE_COOKIES: z.enum(["0", "1"]).default("0"),
  VIRGA_SESSION_HOURS: z.coerce.number().positive().default(12),
  /** The first admin's password; random (and printed once) when unset. */
  VIRGA_ADMIN_PASSWORD: z.string().min(8).optional(),
  /** The local virgad `npm start` runs, registered as host "local". */
  VIRGA_LOCAL_HOST_URL: z.string().url().optional(),
  VIRGA_LOCAL_HOST_TOKEN: z.string().min(1).optional(),
  /** VM events older than this many days are deleted (docs/security.md). */
  VIRGA_RETAIN_EVENTS_DAYS: z.coerce.number().positive().default(30),
  /** Audit entries older than this many days are deleted. */
  VIRGA_RETAIN_AUDIT_DAYS: z.coerce.number().positive().default(365),
  /** How often the retention sweep runs; expired sessions go with it. */
  VIRGA_RETENTION_SWEEP_SECONDS: z.coerce.number().positive().default(3600),
});

export type Env = z.infer<typeof schema>;

let parsed: Env | undefined;

export function env(): Env {
  if (parsed === undefined) {
    const result = schema.safeParse(process.env);
    if (!result.success) {
      const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
      throw new Error(`invalid environment: ${problems.join("; ")}`);
    }
    parsed = result.data;
  }
  return parsed;
}
