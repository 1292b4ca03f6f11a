// What the Linux guest tests check, run inside the L1 machine where
// /dev/kvm is hardware-style KVM (the host's PVM cannot run stock Linux).
// Each scenario boots the Debian guest under a real virga-vmm.
import assert from "node:assert/strict";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { connectQmp, withVmm } from "../support/guest";
import { deviceScenarios } from "./device-scenarios";
import { fields, guestScenario } from "./guest-scenario";
import { createTap } from "./l1-net";
import { QEMU_REFERENCE, VIRGA, VIRGA_Q35 } from "./device-vmms";
import { linuxGuest, linuxKernelArgs } from "./guest-images";
import { migrationScenario } from "./migration-scenario";
import { migrationSoakScenarios } from "./migration-soak";
import { q35StateScenario } from "./q35-state-scenario";
import { snapshotScenarios } from "./snapshot-scenarios";

const BOOT_MS = 120000;

export interface Scenario {
  name: string;
  run(scratch: string): Promise<void>;
}

/** The Debian guest with its initramfs: kernel, vCPUs, memory, command line. */
function guestArgs(options: {
  kernel?: string;
  smp: string;
  mem: string;
  append: string;
}): string[] {
  return ["-machine", "microvm", ...linuxKernelArgs(options)];
}

/** The seed document's microvm command line, paths replaced, plus an initrd. */
function seedArgs(rootfs: string, qmpSocket: string, extraAppend = ""): string[] {
  return [
    "-machine",
    "microvm",
    "-kernel",
    linuxGuest.kernel,
    "-initrd",
    linuxGuest.initrd,
    "-smp",
    "1",
    "-m",
    "1024",
    "-append",
    `console=ttyS0 pci=off reboot=k quiet panic=1 root=/dev/vda${extraAppend}`,
    "-drive",
    `file=${rootfs},id=rootfs,readonly=off,direct=off`,
    "-device",
    "virtio-blk-device,drive=rootfs",
    "-qmp",
    `unix:${qmpSocket},server,nowait`,
    "-serial",
    "stdio",
  ];
}

/** How the VM ended, from virga-vmm's -D log ("shutdown: <reason> (<what did it>)"). */
function shutdownLine(log: string): string {
  return (
    readFileSync(log, "utf8")
      .split("\n")
      .find((line) => line.includes(" shutdown: ")) ?? `(no shutdown line in ${log})`
  );
}

const POWERED_OFF = /shutdown: guest-shutdown \(ACPI sleep control: S5\)$/;

/**
 * The device scenarios (device-scenarios.ts: hot-plugged disk and NIC,
 * balloon; docs/devices.md, docs/q35.md) run against virga-vmm's microvm
 * and q35 in the default suite. VIRGA_LINUX_DEVICES=q35 runs only q35's,
 * =qemu runs them against Debian's QEMU instead (the reference), =all
 * against all three, =none not at all.
 */
function deviceScenariosToRun(): Scenario[] {
  const which = process.env.VIRGA_LINUX_DEVICES ?? "virga";
  switch (which) {
    case "none":
      return [];
    case "virga":
      return [...deviceScenarios(VIRGA, 101), ...deviceScenarios(VIRGA_Q35, 111)];
    case "q35":
      return deviceScenarios(VIRGA_Q35, 111);
    case "qemu":
      return deviceScenarios(QEMU_REFERENCE, 102);
    case "all":
      return [
        ...deviceScenarios(VIRGA, 101),
        ...deviceScenarios(VIRGA_Q35, 111),
        ...deviceScenarios(QEMU_REFERENCE, 102),
      ];
    default:
      throw new Error(
        `VIRGA_LINUX_DEVICES: expected virga, q35, qemu, all or none, got '${which}'`,
      );
  }
}

/**
 * virtio-pci on q35 (docs/q35.md): Debian's stock kernel binds a disk and
 * a NIC on pcie.0 with no command-line hints, reads and writes the disk,
 * and the NIC gets link on a tap and pings L1 (on 192.168.`subnet`.x).
 * With `intx`, the guest runs with `pci=nomsi`: both work by INTx, each
 * function on the IOAPIC pin the DSDT's _PRT gives its slot's pin A.
 */
function q35VirtioPci(subnet: number, intx = false): Scenario {
  return {
    name: intx
      ? "on -machine q35 with pci=nomsi Debian's kernel drives virtio-blk-pci and virtio-net-pci by INTx through the _PRT"
      : "on -machine q35 Debian's kernel drives virtio-blk-pci and virtio-net-pci disks and NICs by MSI-X",
    async run(scratch) {
      const l1 = `192.168.${subnet}.1`;
      const tap = createTap("vpci", `${l1}/24`);
      const data = path.join(scratch, "data.img");
      const token = `VIRGA-PCI-DATA-${process.pid}`;
      const image = Buffer.alloc(8 * 1024 * 1024);
      image.write(`${token}\n`, 0, "latin1");
      writeFileSync(data, image);
      try {
        const args = [
          "-machine",
          "q35",
          ...linuxKernelArgs({
            smp: "2",
            mem: "256",
            append: `console=ttyS0 virga.action=stay${intx ? " pci=nomsi" : ""}`,
          }),
          "-drive",
          `file=${data},id=data`,
          "-device",
          "virtio-blk-pci,drive=data,id=disk0,bus=pcie.0,addr=0x3",
          "-netdev",
          `tap,id=net0,ifname=${tap.tap}`,
          "-device",
          `virtio-net-pci,netdev=net0,id=nic0,bus=pcie.0,addr=0x4,mac=52:54:00:00:01:${subnet.toString(16)}`,
        ];
        await withVmm(args, async (vm) => {
          await vm.waitFor(/VIRGA-GUEST action=stay/, BOOT_MS);
          const disk = fields(await guestScenario(vm, "wait-disk /dev/vda 60"));
          assert.equal(disk.sectors, String(image.length / 512));
          const read = fields(await guestScenario(vm, "read-disk /dev/vda 1024"));
          assert.equal(read.first, token);
          const wrote = await guestScenario(vm, "write /dev/vda 4096");
          assert.match(wrote, /^\/dev\/vda bytes=3908 md5=a9a8f33c94eab5279b70e645a5c41a8e$/);
          // Both functions are virtio-pci, bound by virtio_pci, and use MSI-X
          // (or, with pci=nomsi, none: their INTx line, as /sys's irq says).
          vm.send(
            "for f in 03.0 04.0; do d=/sys/bus/pci/devices/0000:00:$f; echo PCIDEV $f $(cat $d/vendor) $(cat $d/device) $(basename $(readlink $d/driver)) $(ls $d/msi_irqs 2>/dev/null | wc -l) irq=$(cat $d/irq); done; echo END-PCIDEV",
          );
          const seen = await vm.waitFor(
            /(PCIDEV 03\.0 [^\r\n]*)\r?\n(PCIDEV 04\.0 [^\r\n]*)\r?\n[\s\S]*END-PCIDEV/,
            BOOT_MS,
          );
          if (intx) {
            // No MSI-X vectors; Linux numbers the lines itself (checked against the GSIs below).
            assert.match(seen[1] ?? "", /^PCIDEV 03\.0 0x1af4 0x1042 virtio-pci 0 irq=\d+$/);
            assert.match(seen[2] ?? "", /^PCIDEV 04\.0 0x1af4 0x1041 virtio-pci 0 irq=\d+$/);
          } else {
            // blk: its queue and configuration changes; net: two queues and configuration changes.
            assert.match(seen[1] ?? "", /^PCIDEV 03\.0 0x1af4 0x1042 virtio-pci 2 irq=/);
            assert.match(seen[2] ?? "", /^PCIDEV 04\.0 0x1af4 0x1041 virtio-pci 3 irq=/);
          }
          const up = fields(await guestScenario(vm, `net-up eth0 192.168.${subnet}.2/24 60`));
          assert.equal(up.carrier, "1");
          assert.equal(up.mac, `52:54:00:00:01:${subnet.toString(16)}`);
          const ping = await guestScenario(vm, `ping ${l1} 3`);
          assert.ok(Number(fields(ping).received) >= 1, ping);
          if (intx) {
            // Each function's line is the IOAPIC pin the _PRT gives pin A of
            // its slot (16 + 3 for slot 3, 16 + 0 for slot 4: docs/q35.md),
            // level-triggered (fasteoi), and the kernel counted interrupts on it.
            // (The end marker is computed, so the echoed command does not match it.)
            vm.send("grep IO-APIC /proc/interrupts; echo END-$((1+1))-INTR");
            const lines = (await vm.waitFor(/([\s\S]*?)END-2-INTR/, BOOT_MS))[1] ?? "";
            const irqOf = (text: string | undefined): string =>
              /irq=(\d+)/.exec(text ?? "")?.[1] ?? "?";
            for (const [irq, gsi] of [
              [irqOf(seen[1]), "19"],
              [irqOf(seen[2]), "16"],
            ]) {
              const line = new RegExp(
                `^ *${irq}:((?: +\\d+)+) +IO-APIC +${gsi}-fasteoi +virtio`,
                "m",
              ).exec(lines);
              assert.ok(
                line !== null,
                `/proc/interrupts: no IRQ ${irq} on IO-APIC pin ${gsi}: ${lines}`,
              );
              const counts = (line[1] ?? "").trim().split(/ +/).map(Number);
              assert.ok(
                counts.reduce((a, b) => a + b, 0) > 0,
                `no interrupts on IRQ ${irq}: ${line[0]}`,
              );
            }
          }
          vm.send("poweroff -f");
          assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
        });
        const written = readFileSync(data).subarray(4 * 1024 * 1024, 4 * 1024 * 1024 + 14);
        assert.equal(written.toString("latin1"), "VIRGA-WRITE-OK");
      } finally {
        tap.remove();
      }
    },
  };
}

export const SCENARIOS: Scenario[] = [
  {
    name: "the seed's microvm command line boots the ext4 root's init",
    async run(scratch) {
      const rootfs = path.join(scratch, "rootfs.ext4");
      copyFileSync(linuxGuest.rootfs, rootfs);
      const log = path.join(scratch, "vm.log");
      const args = [...seedArgs(rootfs, path.join(scratch, "seed.sock")), "-D", log];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/VIRGA-GUEST rootfs ready/, BOOT_MS);
        await vm.waitFor(/VIRGA-GUEST root=\/dev\/vda ext4/, BOOT_MS);
        assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
      });
      assert.match(shutdownLine(log), POWERED_OFF);
    },
  },
  {
    name: "-smp 2 boots with both CPUs and a second disk the guest writes and the host reads",
    async run(scratch) {
      const data = path.join(scratch, "data.img");
      writeFileSync(data, Buffer.alloc(8 * 1024 * 1024));
      const args = [
        ...guestArgs({
          smp: "2",
          mem: "512",
          append: "console=ttyS0 quiet virga.write=/dev/vdb virga.action=poweroff",
        }),
        "-drive",
        `file=${linuxGuest.rootfs},id=root,readonly=on`,
        "-device",
        "virtio-blk-device,drive=root",
        "-drive",
        `file=${data},id=data`,
        "-device",
        "virtio-blk-device,drive=data",
        "-D",
        path.join(scratch, "vm.log"),
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/VIRGA-GUEST ready/, BOOT_MS);
        await vm.waitFor(/VIRGA-GUEST cpus=2\b/, BOOT_MS);
        await vm.waitFor(/VIRGA-GUEST disk vda sectors=131072 ro=1/, BOOT_MS);
        await vm.waitFor(/VIRGA-GUEST wrote \/dev\/vdb/, BOOT_MS);
        assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
      });
      assert.match(shutdownLine(path.join(scratch, "vm.log")), POWERED_OFF);
      const written = readFileSync(data).subarray(0, 64).toString("latin1");
      assert.ok(
        written.startsWith("VIRGA-WRITE-OK\n1\n2\n3\n"),
        `the disk holds ${JSON.stringify(written)}`,
      );
    },
  },
  {
    name: "a bzImage boots, and reboot=k resets through the i8042, ending the process with exit code 0",
    async run(scratch) {
      // The packaged bzImage (XZ payload, decompressed by the guest), as
      // distributions ship it; the other scenarios use the faster vmlinux.
      const log = path.join(scratch, "vm.log");
      const args = guestArgs({
        kernel: linuxGuest.bzImage,
        smp: "1",
        mem: "256",
        append: "console=ttyS0 quiet reboot=k virga.action=reboot",
      });
      await withVmm([...args, "-D", log], async (vm) => {
        await vm.waitFor(/VIRGA-GUEST ready/, BOOT_MS);
        assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
      });
      // reboot=k: through the keyboard controller, not a triple fault.
      assert.match(shutdownLine(log), /shutdown: guest-reset \(i8042 reset line\)$/);
    },
  },
  {
    name: "QMP drives a Linux guest: status, topology as the guest sees it, stop/cont, quit",
    async run(scratch) {
      const socketPath = path.join(scratch, "qmp.sock");
      const args = [
        ...guestArgs({
          smp: "4,sockets=2,cores=2,threads=1",
          mem: "256",
          append: "console=ttyS0 quiet virga.action=stay",
        }),
        "-qmp",
        `unix:${socketPath},server,nowait`,
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/VIRGA-GUEST ready/, BOOT_MS);
        const qmp = await connectQmp(socketPath, vm);
        assert.equal(((await qmp.execute("query-status")) as { status: string }).status, "running");
        type Props = { "socket-id": number; "core-id": number; "thread-id": number };
        const cpus = (await qmp.execute("query-cpus")) as { CPU: number; props: Props }[];
        assert.deepEqual(
          cpus.map((c) => c.CPU),
          [0, 1, 2, 3],
        );
        // What QMP reports is what Linux sees: physical id = socket, core id = core.
        vm.send(
          "grep -E '^(physical id|core id)' /proc/cpuinfo | tr -d ' \\t' | tr '\\n' ' '; echo END-TOPOLOGY",
        );
        const seen = await vm.waitFor(/((?:physicalid:\d+ coreid:\d+ )+)END-TOPOLOGY/, BOOT_MS);
        const expected = cpus
          .map((c) => `physicalid:${c.props["socket-id"]} coreid:${c.props["core-id"]} `)
          .join("");
        assert.equal(seen[1], expected);
        assert.equal(
          expected,
          "physicalid:0 coreid:0 physicalid:0 coreid:1 physicalid:1 coreid:0 physicalid:1 coreid:1 ",
        );
        await qmp.execute("stop");
        assert.equal(((await qmp.execute("query-status")) as { status: string }).status, "paused");
        await qmp.execute("cont");
        // The guest still answers on its console after the pause.
        vm.send("echo alive-$((6*7))");
        await vm.waitFor(/alive-42/, BOOT_MS);
        await qmp.execute("quit");
        const shutdown = await qmp.waitForEvent("SHUTDOWN");
        assert.deepEqual(shutdown.data, { guest: false, reason: "host-qmp-quit" });
        assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
      });
    },
  },
  {
    name: "on -machine q35 Debian's kernel finds the PCIe root bridge, uses its ECAM and sees the host bridge",
    async run(scratch) {
      const log = path.join(scratch, "vm.log");
      const args = [
        "-machine",
        "q35",
        ...linuxKernelArgs({ smp: "1", mem: "256", append: "console=ttyS0 virga.action=stay" }),
        "-D",
        log,
      ];
      await withVmm(args, async (vm) => {
        await vm.waitFor(/VIRGA-GUEST ready/, BOOT_MS);
        // ACPI found PCI0 (PNP0A08) and the MCFG window reserved by PNP0C02.
        const dmesg = (pattern: string, end: string): void =>
          vm.send(`dmesg | grep -E '${pattern}' | head -5; echo ${end}`);
        dmesg("PCI Root Bridge \\[PCI0\\]", "END-ROOT");
        const root = await vm.waitFor(
          /([^\n]*PCI Root Bridge \[PCI0\][^\n]*)[\s\S]*END-ROOT/,
          BOOT_MS,
        );
        assert.match(root[1] ?? "", /domain 0000 \[bus 00-ff\]/);
        // ECAM in use: the window is claimed, and config space is 4 KiB.
        vm.send("grep -E 'PCI (ECAM|MMCONFIG)' /proc/iomem; echo END-IOMEM");
        const iomem = await vm.waitFor(
          /(\S+ : PCI (?:ECAM|MMCONFIG) 0000 \[bus 00-ff\])[\s\S]*END-IOMEM/,
          BOOT_MS,
        );
        assert.match(iomem[1] ?? "", /^e0000000-efffffff /);
        vm.send(
          "d=/sys/bus/pci/devices/0000:00:00.0; echo HB $(cat $d/vendor) $(cat $d/device) $(cat $d/class) $(wc -c < $d/config) END-HB",
        );
        const bridge = await vm.waitFor(/HB (\S+) (\S+) (\S+) (\d+) END-HB/, BOOT_MS);
        assert.deepEqual(bridge.slice(1), ["0x8086", "0x29c0", "0x060000", "4096"]);
        vm.send("ls /sys/bus/pci/devices | wc -l; echo END-COUNT");
        const count = await vm.waitFor(/(\d+)\s+END-COUNT/, BOOT_MS);
        assert.equal(count[1], "1");
        vm.send("poweroff -f");
        assert.deepEqual(await vm.waitForExit(BOOT_MS), { code: 0, signal: null });
      });
      assert.match(shutdownLine(log), POWERED_OFF);
    },
  },
  q35VirtioPci(110),
  q35VirtioPci(112, true),
  q35StateScenario(111),
  // Snapshot, restore and a clone on its own tap (192.168.103/104.x in
  // L1), then live migration: docs/snapshots.md and QMP.md.
  ...snapshotScenarios(103),
  migrationScenario(),
  ...migrationSoakScenarios(),
  ...deviceScenariosToRun(),
];
