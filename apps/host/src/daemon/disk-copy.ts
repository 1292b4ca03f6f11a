// Copies of disk images for snapshot templates and their clones. cp shares
// the file's extents where the file system can (FICLONE on btrfs, XFS with
// reflink, bcachefs...), so a copy costs no space until either side writes,
// and otherwise writes a sparse copy (holes stay holes). Either way the
// copy is a file of its own: a write to it is never seen by the original.
import { execFile } from "node:child_process";
import { chmod, stat } from "node:fs/promises";
import { promisify } from "node:util";
import { DaemonError } from "./errors";

const run = promisify(execFile);

export interface CopiedDisk {
  sizeBytes: number;
  /** Blocks the copy owns or shares; with reflinks this overstates what the copy added. */
  allocatedBytes: number;
}

export async function copyDisk(from: string, to: string): Promise<CopiedDisk> {
  try {
    await run("cp", ["--reflink=auto", "--sparse=always", "--", from, to]);
  } catch (error) {
    const failed = error as NodeJS.ErrnoException & { stderr?: string };
    const why =
      failed.code === "ENOENT"
        ? "the cp command is not installed"
        : failed.stderr?.trim() || failed.message;
    throw new DaemonError("INTERNAL_SERVER_ERROR", `copying ${from} to ${to}: ${why}`);
  }
  await chmod(to, 0o600);
  const info = await stat(to);
  return { sizeBytes: info.size, allocatedBytes: info.blocks * 512 };
}
