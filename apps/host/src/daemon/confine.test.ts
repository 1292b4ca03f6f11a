import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ImageDirs } from "./confine";
import { DaemonError } from "./errors";

const root = mkdtempSync(path.join(tmpdir(), "virgad-confine-"));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
const images = path.join(root, "images");
mkdirSync(path.join(images, "sub"), { recursive: true });
writeFileSync(path.join(images, "disk.img"), "x");
writeFileSync(path.join(root, "secret.img"), "x");
symlinkSync(path.join(root, "secret.img"), path.join(images, "escape.img"));
symlinkSync(path.join(images, "disk.img"), path.join(images, "alias.img"));
const dirs = new ImageDirs([images, path.join(root, "missing")]);

async function refused(file: string, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(dirs.check("config.drives.0.file", file, "disk"), (error: unknown) => {
    assert.ok(error instanceof DaemonError);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

describe("ImageDirs", () => {
  it("accepts files inside, resolving symlinks that stay inside", async () => {
    assert.equal(
      await dirs.check("config.kernel", path.join(images, "disk.img"), "kernel"),
      path.join(images, "disk.img"),
    );
    assert.equal(
      await dirs.check("config.kernel", path.join(images, "alias.img"), "kernel"),
      path.join(images, "disk.img"),
    );
  });

  it("refuses a path outside, naming the field and the path", async () => {
    await refused(
      path.join(root, "secret.img"),
      "FORBIDDEN",
      /config\.drives\.0\.file: '.*secret\.img' is outside/,
    );
    await refused("/etc/passwd", "FORBIDDEN", /'\/etc\/passwd' is outside/);
  });

  it("refuses a way out through ..", async () => {
    await refused(`${images}/sub/../../secret.img`, "FORBIDDEN", /secret\.img' is outside/);
  });

  it("refuses a way out through a symlink, naming where it leads", async () => {
    await refused(
      path.join(images, "escape.img"),
      "FORBIDDEN",
      /escape\.img' resolves to '.*secret\.img', outside/,
    );
  });

  it("says what is wrong with a path inside: missing, relative, a directory", async () => {
    await refused(path.join(images, "nope.img"), "BAD_REQUEST", /does not exist/);
    await refused("disk.img", "BAD_REQUEST", /must be an absolute path/);
    await refused(path.join(images, "sub"), "BAD_REQUEST", /not a regular file or block device/);
  });
});
