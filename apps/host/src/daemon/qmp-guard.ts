// Raw QMP passthrough must not become a way around confinement: commands
// that name host files get the same check as a VM config, and the resolved
// path is what reaches the VM.
import path from "node:path";
import type { ImageDirs } from "./confine";
import { forbidden } from "./errors";

type Args = Record<string, unknown> | undefined;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks (and rewrites) the host paths in a passthrough command's arguments. */
export async function guardQmpArguments(
  execute: string,
  args: Args,
  images: ImageDirs,
): Promise<Args> {
  if (execute === "blockdev-add" && isRecord(args) && isRecord(args.file)) {
    const filename = args.file.filename;
    if (typeof filename === "string") {
      const real = await images.check("arguments.file.filename", filename, "disk");
      return { ...args, file: { ...args.file, filename: real } };
    }
  }
  if (execute === "migrate" && isRecord(args) && typeof args.uri === "string") {
    const uri = args.uri;
    for (const scheme of ["file:", "unix:"]) {
      if (!uri.startsWith(scheme)) continue;
      const target = uri.slice(scheme.length);
      if (!path.isAbsolute(target))
        throw forbidden(`arguments.uri: '${target}' must be an absolute path`);
      // The target itself is created by the VM; the folder it goes in must be an image directory.
      const parent = await images.checkDirectory("arguments.uri", path.dirname(target));
      return { ...args, uri: scheme + path.join(parent, path.basename(target)) };
    }
  }
  return args;
}
