// What the portal sets up when it starts: the first admin (on an empty
// database; the password is printed once), the local virgad as host "local"
// (when `npm start` passes one), and the built-in guest definitions. Portals
// sharing a database may start at the same moment: whichever writes a row
// first wins, and the others take it as found.
import { randomBytes } from "node:crypto";
import { audit } from "./audit";
import { db, isUniqueViolation } from "./db";
import { env } from "./env";
import { hashPassword } from "./auth/secrets";
import { seedBuiltInDefinitions } from "./definitions/built-in";

export interface BootstrapReport {
  admin: { username: string; password: string | null } | null;
  localHost: string | null;
  definitions: string[];
}

export async function bootstrap(): Promise<BootstrapReport> {
  const report: BootstrapReport = { admin: null, localHost: null, definitions: [] };
  const settings = env();

  if ((await db().user.count()) === 0 && (await createFirstAdmin(report))) {
    await audit({
      principal: null,
      actor: "system",
      action: "bootstrap.firstAdmin",
      target: "admin",
      via: "system",
      ok: true,
    });
  }

  if (
    settings.VIRGA_LOCAL_HOST_URL !== undefined &&
    settings.VIRGA_LOCAL_HOST_TOKEN !== undefined
  ) {
    const url = settings.VIRGA_LOCAL_HOST_URL;
    const token = settings.VIRGA_LOCAL_HOST_TOKEN;
    const existing = await db().host.findFirst({ where: { isLocal: true } });
    if (existing === null) {
      report.localHost = await registerLocalHost(url, token);
    } else if (existing.url !== url || existing.token !== token) {
      await db().host.update({ where: { id: existing.id }, data: { url, token } });
      report.localHost = existing.name;
    } else {
      report.localHost = existing.name;
    }
  }

  report.definitions = await seedBuiltInDefinitions();
  return report;
}

/** False when another portal created the first admin in the meantime. */
async function createFirstAdmin(report: BootstrapReport): Promise<boolean> {
  const given = env().VIRGA_ADMIN_PASSWORD;
  const password = given ?? randomBytes(12).toString("base64url");
  try {
    await db().user.create({
      data: { username: "admin", role: "admin", passwordHash: await hashPassword(password) },
    });
  } catch (error) {
    if (isUniqueViolation(error)) return false;
    throw error;
  }
  report.admin = { username: "admin", password: given === undefined ? password : null };
  return true;
}

/** The local virgad as "local" (or "local-virgad" when that name is taken); its name. */
async function registerLocalHost(url: string, token: string): Promise<string> {
  const name = (await db().host.findUnique({ where: { name: "local" } }))
    ? "local-virgad"
    : "local";
  try {
    await db().host.create({ data: { name, url, token, isLocal: true } });
    return name;
  } catch (error) {
    // Another portal registered the same virgad first.
    const registered = await db().host.findFirst({ where: { isLocal: true, url } });
    if (!isUniqueViolation(error) || registered === null) throw error;
    return registered.name;
  }
}
