// Disk images in the image directories: listed for the portal's disk
// picker, and blank raw images created there (sparse: the file takes no
// space until the guest writes). A new image is named, never given as a
// path, so it cannot land outside an image directory; an existing file is
// never overwritten.
import { open, readdir, stat, unlink } from "node:fs/promises";
import path from "node:path";
import type { ImageDirs } from "./confine";
import { DaemonError, badRequest, messageOf } from "./errors";

export const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MIB = 1024 * 1024;
export const MIN_IMAGE_BYTES = MIB;
export const MAX_IMAGE_BYTES = 2 * 1024 * 1024 * MIB;
/** virtio-blk counts 512-byte sectors: a tail shorter than one would be invisible to the guest. */
export const IMAGE_BYTES_MULTIPLE = 512;

export interface ImageFile {
  path: string;
  dir: string;
  name: string;
  sizeBytes: number;
  /** What the file really takes on disk (less than its size when sparse). */
  allocatedBytes: number;
  /** The VMs whose config names this file. */
  usedBy: string[];
}

export interface CreateImageInput {
  name: string;
  sizeBytes: number;
  /** One of the image directories; default: the run directory's images/. */
  dir?: string | undefined;
}

function imageDir(images: ImageDirs, dir: string): string {
  const wanted = path.resolve(dir);
  const found = images.dirs.find((d) => d.given === wanted || d.real === wanted);
  if (found === undefined) {
    throw badRequest(`dir: '${dir}' is not an image directory (${images.describe()})`);
  }
  return found.real;
}

/** Creates a blank (sparse) raw image; refuses a bad name or size and an existing file. */
export async function createBlankImage(
  images: ImageDirs,
  defaultDir: string,
  input: CreateImageInput,
  usedBy: (file: string) => string[] = () => [],
): Promise<ImageFile> {
  if (!IMAGE_NAME.test(input.name)) {
    throw badRequest(
      `name: '${input.name}' must be a file name of 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  const size = input.sizeBytes;
  if (!Number.isSafeInteger(size) || size < MIN_IMAGE_BYTES || size > MAX_IMAGE_BYTES) {
    throw badRequest(
      `sizeBytes: ${size} is out of range; expected 1 MiB (${MIN_IMAGE_BYTES}) to 2 TiB (${MAX_IMAGE_BYTES})`,
    );
  }
  if (size % IMAGE_BYTES_MULTIPLE !== 0) {
    throw badRequest(
      `sizeBytes: ${size} is not a multiple of ${IMAGE_BYTES_MULTIPLE} (the guest sees whole sectors)`,
    );
  }
  const dir = imageDir(images, input.dir ?? defaultDir);
  const file = path.join(dir, input.name);
  let handle;
  try {
    handle = await open(file, "wx", 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new DaemonError("CONFLICT", `name: '${input.name}' exists already in ${dir}`);
    }
    throw new DaemonError("INTERNAL_SERVER_ERROR", `creating ${file}: ${messageOf(error)}`);
  }
  try {
    await handle.truncate(size);
  } catch (error) {
    await handle.close();
    await unlink(file).catch(() => undefined);
    throw new DaemonError(
      "INTERNAL_SERVER_ERROR",
      `sizing ${file} to ${size} bytes: ${messageOf(error)}`,
    );
  }
  await handle.close();
  return describe(dir, input.name, usedBy);
}

async function describe(
  dir: string,
  name: string,
  usedBy: (file: string) => string[],
): Promise<ImageFile> {
  const file = path.join(dir, name);
  const info = await stat(file);
  return {
    path: file,
    dir,
    name,
    sizeBytes: info.size,
    allocatedBytes: info.blocks * 512,
    usedBy: usedBy(file),
  };
}

/** The regular files at the top of each image directory (kernels included: virgad cannot tell them apart). */
export async function listImages(
  images: ImageDirs,
  usedBy: (file: string) => string[],
): Promise<ImageFile[]> {
  const result: ImageFile[] = [];
  for (const { real } of images.dirs) {
    let names: string[];
    try {
      names = (await readdir(real, { withFileTypes: true }))
        .filter((entry) => entry.isFile())
        .map((entry) => entry.name)
        .sort();
    } catch {
      continue;
    }
    for (const name of names) {
      try {
        result.push(await describe(real, name, usedBy));
      } catch {
        // removed meanwhile
      }
    }
  }
  return result;
}
