// q35 VMs through the portal's API, against a real portal, a real virgad
// and the probe guest: a q35 definition (machine type, root ports, a disk
// on pcie.0) is checked field by field, a VM made from it runs with its
// disk where the definition put it; a stopped VM's root port takes a disk and lets
// it go; the host's PCI devices are listed as sysfs has them, and a VFIO
// device is refused by the VMM by name; every action is audited.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  assertOperatorOnly,
  errorOf,
  FailureWatch,
  PortalApi,
  type Stack,
  startStack,
  statusOf,
  tokenApi,
} from "./harness";

const MIB = 1024 * 1024;
const SYSFS_PCI = "/sys/bus/pci/devices";

let stack: Stack;
let operator: PortalApi;
let viewer: PortalApi;
let hostId: string;
let probeConfig: Record<string, unknown>;
const watch = new FailureWatch();

before(async () => {
  stack = await startStack();
  await setUp().catch((error: unknown) => {
    watch.fail();
    throw error;
  });
});

async function setUp(): Promise<void> {
  operator = await tokenApi(stack, "operator", "dev-operator");
  viewer = await tokenApi(stack, "viewer", "dev-viewer");
  const [host] = await operator.trpc.hosts.list.query();
  assert.ok(host, "the local host is registered");
  hostId = host.id;
  const probe = (await operator.trpc.definitions.list.query()).find(
    (d) => d.name === "probe-guest",
  );
  assert.ok(probe, "the probe guest is offered");
  probeConfig = probe.config;
}

after(async () => {
  await watch.stop(stack);
});

const track = (fn: () => Promise<void>) => watch.track(fn);

/** A root port on pcie.0 as a config's device. */
function rootPort(id: string, port: number, addr: string, chassis?: number) {
  return {
    driver: "pcie-root-port",
    id,
    port,
    bus: "pcie.0",
    addr,
    ...(chassis === undefined ? {} : { chassis }),
  };
}

const BOOT_DISK = {
  driver: "virtio-blk-pci",
  id: "boot",
  drive: "boot",
  bus: "pcie.0",
  addr: "0x3.0",
};

/** The probe guest on q35: the given root ports, then a blank image at 00:03.0. */
async function q35Config(image: string, rootPorts: Record<string, unknown>[] = []) {
  const made = await operator.trpc.images.create.mutate({ hostId, name: image, sizeBytes: MIB });
  return {
    ...probeConfig,
    machine: "q35",
    drives: [{ id: "boot", file: made.path, readOnly: false, direct: false }],
    devices: [...rootPorts, BOOT_DISK],
  };
}

describe("q35 definitions and VMs", () => {
  it(
    "checks a q35 definition by field: a bus that is no root port, two devices at one addr, a microvm device",
    track(async () => {
      const rp1 = rootPort("rp1", 1, "0x2.0");
      const config = await q35Config("q35-check.img", [rp1]);
      const boot = BOOT_DISK;
      const refused = async (name: string, patch: Record<string, unknown>, message: RegExp) => {
        const reply = await operator.mutate("definitions.create", {
          name,
          config: { ...config, ...patch },
        });
        assert.equal(reply.status, 400, JSON.stringify(reply.body));
        assert.match(errorOf(reply).message, message);
      };
      await refused(
        "q35-bus",
        { devices: [rp1, { ...boot, bus: "rp7", addr: "0x0.0" }] },
        /^config\.devices\.1\.bus: unknown bus 'rp7'; expected pcie\.0 or a root port \(rp1\)/,
      );
      await refused(
        "q35-addr",
        { devices: [rp1, { ...boot, addr: "0x2.0" }] },
        /^config\.devices\.1\.addr: pcie\.0 0x2\.0 is taken by 'rp1'/,
      );
      await refused(
        "q35-mmio",
        { devices: [{ driver: "virtio-blk-device", id: "boot", drive: "boot" }] },
        /^config\.devices\.0\.driver: 'virtio-blk-device' is a microvm \(virtio-mmio\) device/,
      );
      await refused(
        "q35-port",
        { devices: [{ ...rp1, port: 300 }, boot] },
        /^config\.devices\.0\.port: must be 0\.\.255/,
      );
    }),
  );

  it(
    "a VM made from a q35 definition runs, with its disk on pcie.0 in the device panel's data",
    track(async () => {
      const definition = await operator.trpc.definitions.create.mutate({
        name: "probe-q35",
        config: await q35Config("q35-boot.img"),
      });
      assert.equal(definition.config.machine, "q35");
      const vm = await operator.trpc.vms.create.mutate({ definitionId: definition.id, hostId });
      assert.equal(vm.state, "running");
      const devices = await viewer.trpc.vms.devices.query({ id: vm.id });
      assert.equal(devices.machine, "q35");
      assert.equal(devices.live, true);
      assert.deepEqual(
        devices.pci.map((f) => [f.id, f.driver, f.bus, f.addr, f.sizeBytes, f.detaching]),
        [["boot", "virtio-blk-pci", "pcie.0", "0x3.0", MIB, false]],
      );
      await operator.trpc.vms.quit.mutate({ id: vm.id });
    }),
  );

  it(
    "a stopped q35 VM's root port takes a disk and lets it go; viewers may not",
    track(async () => {
      const definition = await operator.trpc.definitions.create.mutate({
        name: "probe-q35-ports",
        config: await q35Config("q35-ports.img", [
          rootPort("rp1", 1, "0x2.0", 1),
          rootPort("rp2", 2, "0x2.1", 2),
        ]),
      });
      const vm = await operator.trpc.vms.create.mutate({
        definitionId: definition.id,
        hostId,
        start: false,
      });
      const image = await operator.trpc.images.create.mutate({
        hostId,
        name: "q35-data.img",
        sizeBytes: 2 * MIB,
      });
      await assertOperatorOnly([
        () => viewer.trpc.vms.attachPciDisk.mutate({ id: vm.id, file: image.path }),
        () => viewer.trpc.vms.detachPci.mutate({ id: vm.id, device: "boot" }),
        () => viewer.trpc.vms.attachVfio.mutate({ id: vm.id, host: "0000:00:00.0" }),
      ]);
      const added = await operator.trpc.vms.attachPciDisk.mutate({
        id: vm.id,
        file: image.path,
        bus: "rp2",
      });
      assert.deepEqual([added.bus, added.addr, added.sizeBytes], ["rp2", "0x0.0", 2 * MIB]);
      const devices = await viewer.trpc.vms.devices.query({ id: vm.id });
      assert.deepEqual(
        devices.rootPorts.map((p) => [p.id, p.device]),
        [
          ["rp1", null],
          ["rp2", added.id],
        ],
      );
      const taken = await operator.mutate("vms.attachPciDisk", {
        id: vm.id,
        file: image.path,
        bus: "rp2",
      });
      assert.equal(taken.status, 400);
      assert.equal(errorOf(taken).message, `bus: root port 'rp2' is occupied by '${added.id}'`);
      const root = await operator.mutate("vms.attachPciDisk", {
        id: vm.id,
        file: image.path,
        bus: "pcie.0",
      });
      assert.equal(root.status, 400);
      assert.match(errorOf(root).message, /^bus: pcie\.0 has no hot-plug controller/);
      assert.equal(await operator.trpc.vms.detachPci.mutate({ id: vm.id, device: added.id }), null);
      const after = await viewer.trpc.vms.devices.query({ id: vm.id });
      assert.deepEqual(
        after.rootPorts.map((p) => p.device),
        [null, null],
      );
    }),
  );

  it(
    "lists the host's PCI devices as sysfs has them; a VFIO device is refused by the VMM by name",
    track(async () => {
      const listed = await viewer.trpc.hosts.pciDevices.query({ id: hostId });
      const addresses = readdirSync(SYSFS_PCI).sort();
      assert.deepEqual(
        listed.devices.map((d) => d.address),
        addresses,
      );
      for (const d of listed.devices) {
        const read = (name: string) =>
          readFileSync(`${SYSFS_PCI}/${d.address}/${name}`, "utf8").trim();
        assert.equal(`0x${d.vendor}`, read("vendor"));
        assert.equal(`0x${d.class}`, read("class"));
      }
      const [first] = addresses;
      assert.ok(first !== undefined);
      const config = await q35Config("q35-vfio.img");
      const definition = await operator.trpc.definitions.create.mutate({
        name: "probe-q35-vfio",
        config: {
          ...config,
          devices: [
            ...config.devices,
            { driver: "vfio-pci", id: "dev0", host: first, bus: "pcie.0", addr: "0x5.0" },
          ],
        },
      });
      const start = await statusOf(
        operator.trpc.vms.create.mutate({ definitionId: definition.id, hostId }),
      );
      assert.equal(start.status, 500, start.message);
      assert.match(start.message, /failed to start: .*vfio-pci/);
    }),
  );

  it(
    "audits the q35 device actions with their result",
    track(async () => {
      const admin = await tokenApi(stack, "admin", "dev-auditor");
      const entries = await admin.trpc.audit.list.query({ limit: 500 });
      const has = (action: string, result: string) =>
        entries.some((e) => e.action === action && e.result === result);
      assert.ok(has("vms.attachPciDisk", "ok"));
      assert.ok(has("vms.attachPciDisk", "error"));
      assert.ok(has("vms.detachPci", "ok"));
    }),
  );
});
