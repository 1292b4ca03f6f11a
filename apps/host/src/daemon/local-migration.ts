// Live migration within one virgad (vm.migrate {local: true}): the guest
// moves to a new virga-vmm process on this host over a unix socket and the
// VM keeps its id, name and history — to run a newer virga-vmm, say,
// without stopping the guest.
//
// The receiving process runs as a VM of its own while the guest moves
// (incoming.ts, prepareLocal): a passing id `mig-<hex>`, marked as the
// migration's destination like a VM arriving from another host, so clients
// and the portal skip it. Once the source's process has handed the guest
// over and exited (Daemon.adoptLocal), the receiving VM takes the source's
// place: its files are rewritten for the source's id (here), its directory
// is renamed to the source's, and virgad attaches to its process as it does
// at its own start. The process keeps running throughout; its sockets and
// open files move with the directory. The console's history carries on:
// the new process's output is appended to the source's console file, at
// the offsets after it, so a console client resumes where it was.
import path from "node:path";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { vmConfigSchema, type VmConfig } from "../config/vm-config";
import { consoleFiles } from "./console-file";
import { readJson, writeJson } from "./json-file";
import type { VmPaths } from "./run-dir";
import type { VmMeta, VmSummary } from "./vm";
import { ownedFields } from "./vm-input";

/** What of the source the VM taking its place keeps. */
export interface Replaced {
  summary: VmSummary;
  balloonTargetBytes: number | null;
}

/**
 * Rewrites the receiving VM's config and meta for `target` (the source's
 * directory, gone by now) and moves its directory there.
 */
export async function takePlace(incoming: VmPaths, target: VmPaths, replaced: Replaced) {
  const moved = (file: string): string =>
    file.startsWith(incoming.dir + path.sep)
      ? path.join(target.dir, path.relative(incoming.dir, file))
      : file;
  const config: VmConfig = {
    ...vmConfigSchema.parse(readJson(incoming.config)),
    ...ownedFields(target),
  };
  config.drives = config.drives.map((drive) => ({ ...drive, file: moved(drive.file) }));
  delete config.incoming;
  delete config.pidfile;
  const own = readJson(incoming.meta) as VmMeta;
  const { summary } = replaced;
  const meta: VmMeta = {
    ...own,
    id: summary.id,
    name: summary.name,
    createdAt: summary.createdAt,
    startedAt: summary.startedAt,
    // Its process was started with the passing directory's QMP path.
    vmmQmp: incoming.qmp,
  };
  delete meta.migration;
  if (summary.clonedFrom !== null) meta.clonedFrom = summary.clonedFrom;
  if (replaced.balloonTargetBytes !== null) meta.balloonTargetBytes = replaced.balloonTargetBytes;
  // Written before the move, so the directory arrives complete.
  await writeJson(incoming.config, config);
  await writeJson(incoming.meta, meta);
  await rename(incoming.dir, target.dir);
}

/**
 * The receiving VM's console output (from the guest's arrival on) put after
 * the source's, in one file at the source's base: offsets go on from where
 * the source's console ended. Both relays are closed by now.
 */
export async function joinConsoles(sourceDir: string, incomingDir: string): Promise<void> {
  const [before] = consoleFiles(sourceDir);
  if (before === undefined) return;
  const [after] = consoleFiles(incomingDir);
  const head = await readFile(path.join(sourceDir, before.name));
  const tail =
    after === undefined ? Buffer.alloc(0) : await readFile(path.join(incomingDir, after.name));
  await writeFile(
    path.join(incomingDir, `console.${before.base}.log`),
    Buffer.concat([head, tail]),
    { mode: 0o600 },
  );
  if (after !== undefined && after.base !== before.base) {
    await unlink(path.join(incomingDir, after.name));
  }
}
