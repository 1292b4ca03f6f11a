// Many live migrations of one busy Debian guest in a row (issue 14's
// intermittent failure): both vCPUs spin in user mode, a writer dirties
// memory and the ticker prints, and the guest hops from one virga-vmm to a
// fresh one `rounds` times. With VIRGA_MIGRATION_DUMP each hop's two ends
// write their vCPU registers and page hashes (docs/migration.md); every
// page that differs fails the hop. VIRGA_LINUX_MIGRATION_SOAK=<rounds>
// adds it to the Linux scenarios; run it alone with in-l1.js --only soak.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { QmpClient } from "../../src/qmp/client";
import { connectQmp, VmmProcess, waitForPath } from "../support/guest";
import { linuxKernelArgs } from "./guest-images";
import { bootShell, guestScenario, TickWatch } from "./guest-scenario";
import type { Scenario } from "./scenarios";

const BOOT_MS = 120000;

async function waitMigration(qmp: QmpClient, timeoutMs: number): Promise<{ status: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = (await qmp.execute("query-migrate")) as { status: string };
    if (["completed", "failed", "cancelled"].includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration still ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The pages (as guest-physical addresses below 4 GiB) whose hashes differ. */
function differentPages(source: string, destination: string): number[] {
  const a = readFileSync(source);
  const b = readFileSync(destination);
  assert.equal(a.length, b.length, "the two ends hashed different amounts of RAM");
  const out: number[] = [];
  for (let i = 0; i < a.length; i += 8)
    if (a.readBigUInt64LE(i) !== b.readBigUInt64LE(i)) out.push((i / 8) * 4096);
  return out;
}

// Moving on their own between the source's save and the destination's
// readback: the TSC and what KVM derives from it.
const VOLATILE = new Set([
  "msr0x10",
  "msr0x6e0",
  "msr0x3b",
  // Hyper-V's reference time and VP runtime, and SVM's 32-bit SYSENTER_ESP
  // (KVM drops the high half the guest wrote when the host restores it).
  "msr0x40000020",
  "msr0x40000010",
  "msr0x175",
]);

function vcpuDifferences(source: string, destination: string): string[] {
  const a = readFileSync(source, "utf8").split("\n");
  const b = readFileSync(destination, "utf8").split("\n");
  const out: string[] = [];
  let vcpu = "";
  const bMap = new Map<string, string>();
  for (const line of b) {
    if (line.startsWith("vcpu ")) vcpu = line;
    const name = line.split(" ")[0] ?? "";
    bMap.set(`${vcpu}|${name}`, line);
  }
  vcpu = "";
  for (const line of a) {
    if (line.startsWith("vcpu ")) vcpu = line;
    const name = line.split(" ")[0] ?? "";
    if (VOLATILE.has(name)) continue;
    const other = bMap.get(`${vcpu}|${name}`);
    if (other !== line) out.push(`${vcpu}: source '${line}' destination '${other ?? "(none)"}'`);
  }
  return out;
}

/** Byte differences in the pages KVM shares with the guest (the .pv dumps). */
function sharedPageDifferences(source: string, destination: string): string[] {
  const read = (file: string): Map<number, Buffer> => {
    const out = new Map<number, Buffer>();
    if (!existsSync(file)) return out;
    const data = readFileSync(file);
    for (let at = 0; at + 8 + 4096 <= data.length; at += 8 + 4096)
      out.set(Number(data.readBigUInt64LE(at)), data.subarray(at + 8, at + 8 + 4096));
    return out;
  };
  const a = read(source);
  const b = read(destination);
  const out: string[] = [];
  for (const [gpa, page] of a) {
    const other = b.get(gpa);
    if (other === undefined) continue;
    for (let i = 0; i < 4096; i++)
      if (page[i] !== other[i])
        out.push(`0x${(gpa + i).toString(16)}: source 0x${page[i]?.toString(16)} destination 0x${other[i]?.toString(16)}`);
  }
  return out;
}

/** The pages of the kvmclock wall-clock structures (MSRs 0x11, 0x4b564d00). */
function wallClockPages(vcpus: string): Set<number> {
  const out = new Set<number>();
  for (const match of readFileSync(vcpus, "utf8").matchAll(/^msr0x(?:11|4b564d00) 0x([0-9a-f]+)$/gm))
    out.add(Math.floor(parseInt(match[1] ?? "0", 16) / 4096) * 4096);
  return out;
}

/** "user,kernel": each vCPU's privilege level when the source saved it. */
function userMode(vcpus: string): string {
  return [...readFileSync(vcpus, "utf8").matchAll(/^cs sel=0x([0-9a-f]+)/gm)]
    .map((m) => ((parseInt(m[1] ?? "0", 16) & 3) === 3 ? "user" : "kernel"))
    .join(",");
}

export function migrationSoakScenarios(): Scenario[] {
  const rounds = Number(process.env.VIRGA_LINUX_MIGRATION_SOAK ?? "0");
  if (!Number.isInteger(rounds) || rounds <= 0) return [];
  return [
    {
      name: `migration soak: ${rounds} live migrations in a row of a guest busy in user mode on both vCPUs`,
      async run(scratch) {
        const dumps = process.env.VIRGA_MIGRATION_DUMP ?? path.join(scratch, "dumps");
        mkdirSync(dumps, { recursive: true });
        const env = { ...process.env, VIRGA_MIGRATION_DUMP: dumps };
        const machine = [
          "-machine",
          "microvm",
          ...linuxKernelArgs({ smp: "2", mem: "256", append: "console=ttyS0 quiet virga.action=stay" }),
          "-serial",
          "stdio",
        ];
        const started: VmmProcess[] = [];
        const vmm = (n: number, extra: string[]): VmmProcess => {
          const vm = new VmmProcess(
            [...machine, "-qmp", `unix:${path.join(scratch, `vm${n}.sock`)},server,nowait`, ...extra],
            { env },
          );
          started.push(vm);
          return vm;
        };
        const failures: string[] = [];
        let source = vmm(0, []);
        try {
          let sourceQmp = await bootShell(source, path.join(scratch, "vm0.sock"));
          await guestScenario(source, "ticker 0.2");
          await guestScenario(source, "dirty 16M 4");
          // Two spinners in user mode, so a pause often finds a vCPU there;
          // they rest half the time, or L1 (2 vCPUs under TCG) has no time
          // left for the VMMs' control planes.
          const spin = "(while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 0.1; done) &";
          source.send(`${spin} ${spin}`);
          let ticks = new TickWatch(source.serial);
          await ticks.waitFor(3, BOOT_MS);
          for (let round = 1; round <= rounds; round++) {
            const uri = `unix:${path.join(scratch, `mig${round}.sock`)}`;
            const destSocket = path.join(scratch, `vm${round}.sock`);
            const dest = vmm(round, ["-incoming", uri]);
            await waitForPath(destSocket, dest);
            // The first client starts the control plane: slow on a busy L1.
            const destQmp = await connectQmp(destSocket, dest, 60000);
            await destQmp.execute("qmp_capabilities");
            const destTicks = new TickWatch(dest.serial);
            assert.deepEqual(await sourceQmp.execute("migrate", { uri }), {});
            const info = await waitMigration(sourceQmp, BOOT_MS);
            assert.equal(info.status, "completed", `round ${round}: ${JSON.stringify(info)}`);
            await source.waitForExit(BOOT_MS);
            const last = ticks.last();
            ticks.stop();
            const sourcePid = source.child.pid ?? 0;
            const destPid = dest.child.pid ?? 0;
            const pages = [`source-${sourcePid}`, `destination-${destPid}`].map((p) =>
              path.join(dumps, `${p}.pages`),
            );
            if (pages.every((p) => existsSync(p))) {
              const sourceVcpus = path.join(dumps, `source-${sourcePid}.vcpus`);
              // KVM writes the wall-clock page when its MSR is restored.
              const wallClock = wallClockPages(sourceVcpus);
              const differ = differentPages(pages[0] ?? "", pages[1] ?? "").filter(
                (gpa) => !wallClock.has(gpa),
              );
              const regs = vcpuDifferences(sourceVcpus, path.join(dumps, `destination-${destPid}.vcpus`));
              console.log(`round ${round}: source vCPUs in ${userMode(sourceVcpus)}`);
              const shared = sharedPageDifferences(
                path.join(dumps, `source-${sourcePid}.pv`),
                path.join(dumps, `destination-${destPid}.pv`),
              );
              if (shared.length > 0)
                console.log(`round ${round}: shared pages differ:\n  ${shared.slice(0, 40).join("\n  ")}`);
              console.log(
                `round ${round}: ${differ.length} pages differ` +
                  (differ.length > 0
                    ? ` (${differ
                        .slice(0, 16)
                        .map((a) => `0x${a.toString(16)}`)
                        .join(" ")})`
                    : "") +
                  `; vCPU state differences: ${regs.length === 0 ? "none" : `\n  ${regs.join("\n  ")}`}`,
              );
              if (differ.length > 0) failures.push(`round ${round}: ${differ.length} pages differ`);
            }
            let resumed = true;
            try {
              await destTicks.waitFor((last?.n ?? 0) + 3, 90000);
            } catch (error) {
              resumed = false;
              failures.push(`round ${round}: the ticker stopped: ${String(error)}`);
            }
            console.log(
              `round ${round}: ${resumed ? "ticks go on" : "TICKS STOPPED"} (source ended at ${last?.n})`,
            );
            sourceQmp.close();
            source = dest;
            sourceQmp = destQmp;
            ticks = destTicks;
            if (!resumed) break;
          }
          ticks.stop();
          sourceQmp.close();
          assert.deepEqual(failures, []);
        } catch (error) {
          if (error instanceof Error) error.message += `\n${source.transcript().slice(-8000)}`;
          throw error;
        } finally {
          for (const vm of started) await vm.kill();
        }
      },
    },
  ];
}
