// Confinement: every file a VM config names (kernel, initrd, disks) must
// resolve, after symlinks, inside one of the image directories virgad was
// given. The lexical check comes first so nothing is said about files
// outside them (not even whether they exist); the realpath check catches
// `..` and symlinks that lead out. The resolved path is what gets stored
// and passed to virga-vmm.
import { realpathSync } from "node:fs";
import { lstat, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { badRequest, forbidden } from "./errors";

export type FileRole = "kernel" | "initrd" | "disk";

function inside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative === "" ? false : !relative.startsWith("..") && !path.isAbsolute(relative);
}

export class ImageDirs {
  /** Each configured directory as given (absolute) and as resolved. */
  readonly dirs: { given: string; real: string }[];

  /** Directories that do not exist are skipped: nothing can resolve into them. */
  constructor(dirs: readonly string[]) {
    this.dirs = [];
    for (const dir of dirs) {
      const given = path.resolve(dir);
      try {
        const real = realpathSync(given);
        if (!this.dirs.some((d) => d.real === real)) this.dirs.push({ given, real });
      } catch {
        // missing: skipped
      }
    }
  }

  /** These directories plus `dir` (a VM's own disks; skipped while it does not exist). */
  with(dir: string): ImageDirs {
    return new ImageDirs([...this.dirs.map((d) => d.given), dir]);
  }

  describe(): string {
    return this.dirs.length === 0 ? "(none)" : this.dirs.map((d) => d.real).join(", ");
  }

  /** Checks one path from a config; returns its resolved form or throws FORBIDDEN / BAD_REQUEST naming `field`. */
  async check(field: string, file: string, role: FileRole): Promise<string> {
    if (!path.isAbsolute(file)) throw badRequest(`${field}: '${file}' must be an absolute path`);
    const lexical = path.resolve(file);
    if (!this.dirs.some((d) => inside(lexical, d.given) || inside(lexical, d.real))) {
      throw forbidden(`${field}: '${file}' is outside the image directories (${this.describe()})`);
    }
    let real: string;
    try {
      real = await realpath(lexical);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw badRequest(`${field}: '${file}' does not exist`);
      throw badRequest(`${field}: '${file}' cannot be resolved (${code ?? "error"})`);
    }
    if (!this.dirs.some((d) => inside(real, d.real))) {
      throw forbidden(
        `${field}: '${file}' resolves to '${real}', outside the image directories (${this.describe()})`,
      );
    }
    const info = await stat(real);
    const ok = info.isFile() || (role === "disk" && info.isBlockDevice());
    if (!ok) {
      throw badRequest(
        `${field}: '${file}' is not a ${role === "disk" ? "regular file or block device" : "regular file"}`,
      );
    }
    return real;
  }

  /** A directory that must be an image directory or inside one (snapshot targets). */
  private async checkDirectory(field: string, dir: string): Promise<string> {
    const lexical = path.resolve(dir);
    const within = (d: string): boolean => lexical === d || inside(lexical, d);
    if (!this.dirs.some((d) => within(d.given) || within(d.real))) {
      throw forbidden(`${field}: '${dir}' is outside the image directories (${this.describe()})`);
    }
    let real: string;
    try {
      real = await realpath(lexical);
    } catch {
      throw badRequest(`${field}: directory '${dir}' does not exist`);
    }
    if (!this.dirs.some((d) => real === d.real || inside(real, d.real))) {
      throw forbidden(`${field}: '${dir}' is outside the image directories (${this.describe()})`);
    }
    return real;
  }

  /**
   * A path the VM will create or connect to (a snapshot directory, a
   * migration socket): its directory must be an image directory or inside
   * one, and whatever is there already (a symlink, say) must resolve inside
   * one too. Returns the path with its directory resolved.
   */
  async checkTarget(field: string, target: string): Promise<string> {
    if (!path.isAbsolute(target)) {
      throw badRequest(`${field}: '${target}' must be an absolute path`);
    }
    const lexical = path.resolve(target);
    const parent = await this.checkDirectory(field, path.dirname(lexical));
    const placed = path.join(parent, path.basename(lexical));
    try {
      await lstat(placed);
    } catch {
      return placed; // nothing there yet: the VM creates it inside
    }
    let real: string;
    try {
      real = await realpath(placed);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "error";
      throw badRequest(`${field}: '${target}' cannot be resolved (${code})`);
    }
    if (!this.dirs.some((d) => inside(real, d.real))) {
      throw forbidden(
        `${field}: '${target}' resolves to '${real}', outside the image directories (${this.describe()})`,
      );
    }
    return real;
  }
}
