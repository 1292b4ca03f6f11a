import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ImageDirs } from "./confine";
import { DaemonError } from "./errors";
import { isInterfaceName } from "../config/vm-config";
import { checkRawQmp, RAW_QMP_COMMANDS, rawQmpAccess } from "./qmp-allow-list";

const root = mkdtempSync(path.join(tmpdir(), "virgad-allow-"));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
const images = path.join(root, "images");
const outside = path.join(root, "outside");
mkdirSync(path.join(images, "snaps"), { recursive: true });
mkdirSync(outside);
writeFileSync(path.join(images, "disk.img"), "x");
writeFileSync(path.join(outside, "secret.img"), "x");
symlinkSync(path.join(images, "disk.img"), path.join(images, "alias.img"));
symlinkSync(outside, path.join(images, "way-out"));
const dirs = new ImageDirs([images]);

async function refused(
  execute: string,
  args: unknown,
  code: "FORBIDDEN" | "BAD_REQUEST",
  message: RegExp,
): Promise<void> {
  await assert.rejects(checkRawQmp(execute, args, dirs), (error: unknown) => {
    assert.ok(error instanceof DaemonError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

const file = (filename: unknown, extra: Record<string, unknown> = {}) => ({
  "node-name": "drive-1",
  file: { driver: "file", filename, ...extra },
});

describe("raw QMP allow-list", () => {
  it("lets viewers send the named read-only queries, and nothing else", () => {
    const viewer = [...RAW_QMP_COMMANDS].filter(([, r]) => r.role === "viewer").map(([n]) => n);
    assert.deepEqual(viewer.sort(), [
      "query-balloon",
      "query-chardev",
      "query-commands",
      "query-cpus",
      "query-cpus-fast",
      "query-events",
      "query-hotpluggable-cpus",
      "query-kvm",
      "query-machines",
      "query-migrate",
      "query-migrate-parameters",
      "query-stats",
      "query-stats-schemas",
      "query-status",
      "query-target",
      "query-version",
      "virga-query-balloon",
      "virga-query-devices",
    ]);
    for (const name of ["stop", "cont", "quit", "blockdev-add", "migrate", "device_add"]) {
      const access = rawQmpAccess(name);
      assert.ok(access.allowed && access.rule.role === "operator", name);
    }
    assert.deepEqual(rawQmpAccess("query-foo"), {
      allowed: false,
      reason: "execute: 'query-foo' is not allowed through the gateway",
    });
  });

  it("refuses every command not in the table by name, query-* included", async () => {
    await refused(
      "query-unknown",
      undefined,
      "FORBIDDEN",
      /^execute: 'query-unknown' is not allowed through the gateway$/,
    );
    await refused("human-monitor-command", {}, "FORBIDDEN", /'human-monitor-command' is not/);
    await refused(
      "getfd",
      { fdname: "x" },
      "FORBIDDEN",
      /^execute: 'getfd' is not allowed through the gateway: it takes a descriptor passed on the QMP socket, which HTTP cannot carry$/,
    );
    await refused("closefd", { fdname: "x" }, "FORBIDDEN", /'closefd' is not allowed/);
    await refused("__proto__", undefined, "FORBIDDEN", /'__proto__' is not allowed/);
  });

  it("refuses arguments that are not an object, naming arguments", async () => {
    for (const args of [[1], "x", 5, null, true]) {
      await refused("query-status", args, "BAD_REQUEST", /^arguments: expected an object$/);
    }
  });

  it("passes the arguments of commands without paths through unchanged", async () => {
    assert.deepEqual(await checkRawQmp("query-stats", { target: "vcpu" }, dirs), {
      target: "vcpu",
    });
    assert.equal(await checkRawQmp("stop", undefined, dirs), undefined);
    assert.deepEqual(await checkRawQmp("device_add", { id: "d", driver: "x" }, dirs), {
      id: "d",
      driver: "x",
    });
  });

  describe("blockdev-add", () => {
    it("confines file.filename and passes on the resolved path", async () => {
      assert.deepEqual(
        await checkRawQmp(
          "blockdev-add",
          { ...file(path.join(images, "alias.img")), "read-only": true, cache: { direct: true } },
          dirs,
        ),
        {
          ...file(path.join(images, "disk.img")),
          "read-only": true,
          cache: { direct: true },
        },
      );
    });

    it("refuses files outside the image directories, however reached", async () => {
      await refused(
        "blockdev-add",
        file(path.join(outside, "secret.img")),
        "FORBIDDEN",
        /^arguments\.file\.filename: '.*secret\.img' is outside the image directories/,
      );
      await refused(
        "blockdev-add",
        file(`${images}/../outside/secret.img`),
        "FORBIDDEN",
        /arguments\.file\.filename: .* is outside/,
      );
      await refused(
        "blockdev-add",
        file(path.join(images, "way-out", "secret.img")),
        "FORBIDDEN",
        /arguments\.file\.filename: .* resolves to '.*secret\.img', outside/,
      );
      await refused(
        "blockdev-add",
        file("disk.img"),
        "BAD_REQUEST",
        /arguments\.file\.filename: 'disk\.img' must be an absolute path/,
      );
      await refused(
        "blockdev-add",
        file(path.join(images, "none.img")),
        "BAD_REQUEST",
        /none\.img' does not exist/,
      );
      await refused(
        "blockdev-add",
        file(42),
        "BAD_REQUEST",
        /^arguments\.file\.filename: expected a string/,
      );
    });

    it("refuses the other ways to name a file", async () => {
      await refused(
        "blockdev-add",
        { "node-name": "d", file: "other-node" },
        "FORBIDDEN",
        /^arguments\.file: a reference to another node \('other-node'\) is not allowed/,
      );
      await refused(
        "blockdev-add",
        { "node-name": "d", driver: "file", filename: "/etc/shadow" },
        "FORBIDDEN",
        /^arguments\.filename: not allowed through the gateway \(give the file as file:/,
      );
      for (const driver of ["host_device", "nbd", "http", "raw"]) {
        await refused(
          "blockdev-add",
          { "node-name": "d", file: { driver, filename: "/etc/shadow" } },
          "FORBIDDEN",
          new RegExp(`^arguments\\.file\\.driver: '${driver}' is not allowed through the gateway`),
        );
      }
      await refused(
        "blockdev-add",
        { "node-name": "d", file: { filename: path.join(images, "disk.img") } },
        "FORBIDDEN",
        /^arguments\.file\.driver: expected 'file'/,
      );
      await refused(
        "blockdev-add",
        { "node-name": "d", file: [path.join(images, "disk.img")] },
        "BAD_REQUEST",
        /^arguments\.file: expected \{"driver": "file"/,
      );
      await refused(
        "blockdev-add",
        { ...file(path.join(images, "disk.img")), backing: { driver: "file", filename: "/x" } },
        "FORBIDDEN",
        /^arguments\.backing: not allowed through the gateway \(it takes only node-name, driver, file, read-only, cache\)/,
      );
      await refused(
        "blockdev-add",
        { "node-name": "d", constructor: 1 },
        "FORBIDDEN",
        /^arguments\.constructor: not allowed through the gateway \(it takes only node-name,/,
      );
      await refused(
        "blockdev-add",
        file(path.join(images, "disk.img"), { "pr-manager": "x" }),
        "FORBIDDEN",
        /^arguments\.file\.pr-manager: not allowed/,
      );
    });

    it("leaves a missing file for the VM to name", async () => {
      assert.deepEqual(await checkRawQmp("blockdev-add", { "node-name": "d" }, dirs), {
        "node-name": "d",
      });
    });
  });

  describe("migrate", () => {
    it("confines file: and unix: targets to the image directories", async () => {
      assert.deepEqual(
        await checkRawQmp("migrate", { uri: `file:${images}/snaps/../snap-1` }, dirs),
        { uri: `file:${path.join(images, "snap-1")}` },
      );
      assert.deepEqual(await checkRawQmp("migrate", { uri: `unix:${images}/mig.sock` }, dirs), {
        uri: `unix:${path.join(images, "mig.sock")}`,
      });
      await refused(
        "migrate",
        { uri: `file:${outside}/snap` },
        "FORBIDDEN",
        /^arguments\.uri: '.*outside' is outside the image directories/,
      );
      await refused("migrate", { uri: "unix:/run/docker.sock" }, "FORBIDDEN", /is outside/);
      await refused("migrate", { uri: `file:${images}/..` }, "FORBIDDEN", /is outside/);
      await refused(
        "migrate",
        { uri: `file:${images}/way-out` },
        "FORBIDDEN",
        /^arguments\.uri: '.*way-out' resolves to '.*outside', outside the image directories/,
      );
      await refused(
        "migrate",
        { uri: "file:snap" },
        "BAD_REQUEST",
        /^arguments\.uri: 'snap' must be an absolute path/,
      );
      await refused(
        "migrate",
        { uri: `file:${images}/nowhere/snap` },
        "BAD_REQUEST",
        /arguments\.uri: directory '.*nowhere' does not exist/,
      );
    });

    it("allows tcp: to a valid host and port", async () => {
      for (const uri of [
        "tcp:10.0.0.2:4444",
        "tcp:[::1]:4444",
        "tcp:dest.example:1",
        "tcp:h:65535",
      ]) {
        assert.deepEqual(await checkRawQmp("migrate", { uri }, dirs), { uri });
      }
      for (const uri of [
        "tcp:10.0.0.2",
        "tcp:h:0",
        "tcp:h:65536",
        "tcp:h:port",
        "tcp::4444",
        "tcp:-bad:1",
        "tcp:a b:1",
        "tcp:[zz]:1",
        "tcp:h:1/x",
      ]) {
        await refused(
          "migrate",
          { uri },
          "BAD_REQUEST",
          /^arguments\.uri: '.*' is not tcp:<host>:<port>/,
        );
      }
    });

    it("refuses exec:, fd: and other schemes by name", async () => {
      await refused(
        "migrate",
        { uri: "exec:cat > /etc/passwd" },
        "FORBIDDEN",
        /^arguments\.uri: 'exec:' is not allowed through the gateway \(exec: runs a host command\)/,
      );
      await refused(
        "migrate",
        { uri: "fd:mig" },
        "FORBIDDEN",
        /^arguments\.uri: 'fd:' is not allowed through the gateway \(fd: needs a descriptor/,
      );
      await refused(
        "migrate",
        { uri: "rdma:10.0.0.2:4444" },
        "FORBIDDEN",
        /^arguments\.uri: 'rdma:' is not allowed through the gateway \(file:, unix: or tcp:\)/,
      );
      await refused("migrate", { uri: 7 }, "BAD_REQUEST", /^arguments\.uri: expected a string/);
      await refused(
        "migrate",
        { channels: [{ "channel-type": "main" }] },
        "FORBIDDEN",
        /^arguments\.channels: not allowed through the gateway \(give the target as uri\)/,
      );
    });
  });

  describe("netdev_add", () => {
    it("takes a tap by a valid interface name", async () => {
      const args = { id: "net-1", type: "tap", ifname: "tap-123456789ab" };
      assert.deepEqual(await checkRawQmp("netdev_add", args, dirs), args);
      for (const ifname of [
        "",
        "a".repeat(16),
        "a/b",
        "a b",
        "a\tb",
        "a:b",
        ".",
        "..",
        5,
        "éééééééé",
      ]) {
        await refused(
          "netdev_add",
          { id: "n", ifname },
          "BAD_REQUEST",
          /^arguments\.ifname: .* is not an interface name \(1-15 bytes, not '\.' or '\.\.', no '\/', ':' or whitespace\)/,
        );
      }
      assert.equal(isInterfaceName("ééééééé"), true); // 14 bytes
    });

    it("refuses a descriptor and host scripts by name", async () => {
      await refused(
        "netdev_add",
        { id: "n", fd: "tapfd" },
        "FORBIDDEN",
        /^arguments\.fd: not allowed through the gateway \(HTTP cannot pass a descriptor; give ifname\)/,
      );
      await refused(
        "netdev_add",
        { id: "n", ifname: "tap0", script: "/tmp/x.sh" },
        "FORBIDDEN",
        /^arguments\.script: not allowed through the gateway \(it runs a host program\)/,
      );
    });
  });
});
