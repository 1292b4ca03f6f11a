// q35 VMs under virgad, end to end: real virgad, real virga-vmm, the probe
// guest on the PCIe board (docs/q35.md). A VM with a virtio-blk-pci disk on
// pcie.0 starts, its console shows the probe finding the disk by its ECAM
// scan, it survives virgad's kill -9 (re-attached, not restarted), and it
// stops; a misplaced device is refused naming the field, before any VM runs.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { makeDisk } from "../support/disk";
import { requireKvmHost } from "../support/guest";
import { ConsoleWatcher, refused, storedConfig, withVirgad, type VirgadFixture } from "./harness";

const TEST = { timeout: 90000 };

/** The probe on q35 with a 1 MiB disk at 00:03.0. */
function q35Probe(fx: VirgadFixture) {
  const file = makeDisk(fx.imagesDir, "boot.img");
  return {
    ...fx.probeConfig(),
    machine: "q35" as const,
    drives: [{ id: "boot", file, readOnly: false, direct: false }],
    devices: [
      {
        driver: "virtio-blk-pci" as const,
        id: "boot",
        drive: "boot",
        bus: "pcie.0",
        addr: "0x3.0",
      },
    ],
  };
}

describe("virgad q35 VMs", () => {
  before(() => {
    requireKvmHost();
  });

  it(
    "starts a q35 VM with a disk on pcie.0, shows its console, re-attaches it after a virgad restart, stops it",
    TEST,
    () =>
      withVirgad(async (fx) => {
        const first = await fx.start();
        const client = first.client();
        const created = await client.vm.create.mutate({ id: "pc", config: q35Probe(fx) });
        assert.equal(created.config.machine, "q35");
        const console = new ConsoleWatcher(client, "pc");
        const vm = await client.vm.start.mutate({ id: "pc" });
        fx.track(vm.pid);
        await console.waitFor(/PROBE virtio-blk 0 pci=00:03\.0 capacity=2048 ro=0/);
        await console.waitFor(/PROBE ready/);
        await client.vm.consoleInput.mutate({ id: "pc", data: "pci\n" });
        await console.waitFor(/OK pci \d+/);
        assert.match(console.text, /pci 00:00\.0 8086:29c0 060000/);
        assert.match(console.text, /pci 00:03\.0 1af4:1042 018000/);
        const stored = storedConfig(fx, "pc");
        assert.equal(stored.machine, "q35");
        assert.deepEqual(
          stored.devices.map((d) => ("bus" in d ? `${d.driver}@${d.bus}/${d.addr}` : d.driver)),
          ["virtio-blk-pci@pcie.0/0x3.0"],
        );

        await first.kill9();
        const second = await fx.start();
        const client2 = second.client();
        const again = await client2.vm.get.query({ id: "pc" });
        assert.equal(again.state, "running");
        assert.equal(again.pid, vm.pid, "re-attached, not restarted");
        const console2 = new ConsoleWatcher(client2, "pc");
        await console2.waitStarted();
        await client2.vm.consoleInput.mutate({ id: "pc", data: "count\n" });
        await console2.waitFor(/count \d+\n/);
        console2.close();

        const quit = await client2.vm.quit.mutate({ id: "pc" });
        assert.equal(quit.state, "shutdown");
        console.close();
      }),
  );

  it("refuses a misplaced device or root port by its field, and creates nothing", TEST, () =>
    withVirgad(async (fx) => {
      const virgad = await fx.start();
      const client = virgad.client();
      const config = q35Probe(fx);
      const [boot] = config.devices;
      assert.ok(boot !== undefined);
      await refused(
        client.vm.create.mutate({
          id: "bad",
          config: { ...config, devices: [{ ...boot, bus: "rp1", addr: "0x0.0" }] },
        }),
        "BAD_REQUEST",
        /config\.devices\.0\.bus: unknown bus 'rp1'; expected pcie\.0 or a root port \(none declared\)/,
      );
      await refused(
        client.vm.create.mutate({
          id: "bad",
          config: {
            ...config,
            rootPorts: [{ id: "rp1", port: 1, addr: "0x3.0" }],
          },
        }),
        "BAD_REQUEST",
        /config\.devices\.0\.addr: pcie\.0 0x3\.0 is taken by 'rp1'/,
      );
      await refused(
        client.vm.create.mutate({
          id: "bad",
          config: {
            ...config,
            devices: [{ driver: "virtio-blk-device", id: "boot", drive: "boot" }],
          },
        }),
        "BAD_REQUEST",
        /config\.devices\.0\.driver: 'virtio-blk-device' is a microvm \(virtio-mmio\) device; the q35 machine takes virtio-blk-pci/,
      );
      assert.deepEqual(await client.vm.list.query(), []);
    }),
  );
});
