// Keeping the SnapshotTemplate rows in step with the templates each host's
// virgad has (docs/virgad-api.md, "Templates and clones"): a template made
// or deleted through virgad's own API shows up or goes here too, and the
// count of clones made is virgad's.
import type { Host, SnapshotTemplate } from "@virga/prisma";
import type { TemplateInfo } from "@virga/host/src/daemon/router";
import { db, isUniqueViolation } from "../db";
import { virgad } from "../hosts/virgad";

/** The fields of a row that come from virgad's TemplateInfo. */
function fields(info: TemplateInfo) {
  return {
    path: info.dir,
    config: JSON.stringify(info.config),
    memoryBytes: BigInt(info.memoryBytes),
    sourceVmName: info.source.name,
    sizeBytes: BigInt(info.sizes.allocatedBytes),
    clonesMade: info.clonesMade,
  };
}

/** The portal id of the VM virgad knows as `hostVmId` on `host`, if the portal has it. */
async function portalVmId(host: Host, hostVmId: string): Promise<string | null> {
  const vm = await db().vm.findUnique({
    where: { hostId_hostVmId: { hostId: host.id, hostVmId } },
  });
  return vm?.id ?? null;
}

async function updateTemplate(host: Host, info: TemplateInfo) {
  const existing = await db().snapshotTemplate.findFirst({
    where: { hostId: host.id, name: info.name },
  });
  if (existing === null) return null;
  return db().snapshotTemplate.update({ where: { id: existing.id }, data: fields(info) });
}

/** Creates or updates the row for a template virgad reported. */
export async function upsertTemplate(host: Host, info: TemplateInfo): Promise<SnapshotTemplate> {
  const updated = await updateTemplate(host, info);
  if (updated !== null) return updated;
  try {
    return await db().snapshotTemplate.create({
      data: {
        ...fields(info),
        name: info.name,
        hostId: host.id,
        sourceVmId: await portalVmId(host, info.source.id),
        createdAt: new Date(info.createdAt),
      },
    });
  } catch (error) {
    // Another portal on the same database created it in between.
    const row = isUniqueViolation(error) ? await updateTemplate(host, info) : null;
    if (row === null) throw error;
    return row;
  }
}

/**
 * Brings one host's rows in line with its virgad's templates. A host that
 * does not answer keeps its rows (shown as they were).
 */
export async function syncHostTemplates(host: Host): Promise<void> {
  const listedAt = new Date();
  let infos: TemplateInfo[];
  try {
    infos = await virgad(host).template.list.query();
  } catch {
    return;
  }
  for (const info of infos) {
    // Names are unique across the portal: one another host already uses is left out.
    const clash = await db().snapshotTemplate.findFirst({
      where: { name: info.name, NOT: { hostId: host.id } },
    });
    if (clash === null) await upsertTemplate(host, info);
  }
  // A template made since the list was taken (through another portal) stays.
  await db().snapshotTemplate.deleteMany({
    where: {
      hostId: host.id,
      name: { notIn: infos.map((info) => info.name) },
      createdAt: { lt: listedAt },
    },
  });
}
