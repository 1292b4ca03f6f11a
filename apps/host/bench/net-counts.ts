// Counts behind the device bench's TCP figures that do not depend on the
// machine's load: what the guest's NIC did per MiB of the stream (the same
// readings under either VMM) and, for virga-vmm, what its virtio-net device
// did (virga-query-devices). Throughput on a shared machine is noisy; these
// say whether a difference is the device's behaviour or the load.
import type { GuestConsole } from "../test/linux/guest-scenario";
import { fields } from "../test/linux/guest-scenario";
import type { QmpClient } from "../src/qmp/client";

/** The guest's eth0, read from /sys and /proc (per-CPU lists in CPU order). */
export interface GuestNetReading {
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /** The NIC's interrupt (both queues share it on virtio-mmio), per CPU. */
  irq: number[];
  netRx: number[];
  netTx: number[];
  /** Jiffies each CPU spent in tasks (user and system) and in interrupts and softirqs. */
  taskJiffies: number[];
  irqJiffies: number[];
  /** Jiffies each vCPU was ready but not run by the host (KVM steal time). */
  stealJiffies: number[];
}

// One line of shell; its echo never holds "VIRGA-NETCOUNT tx-packets=<digit>".
const READ_GUEST =
  "d=$(basename $(readlink /sys/class/net/eth0/device)); s=/sys/class/net/eth0/statistics; " +
  'row() { awk -v k="$1" \'$1 == k || $NF == k { n = ""; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) ' +
  'n = n (n == "" ? "" : ",") $i; print n; exit }\' "$2"; }; ' +
  'jif() { awk -v a="$1" -v b="$2" \'$1 ~ /^cpu[0-9]/ { n = n (n == "" ? "" : ",") ($a + (b == "" ? 0 : $b)) } END { print n }\' /proc/stat; }; ' +
  "echo VIRGA-NETCOUNT tx-packets=$(cat $s/tx_packets) tx-bytes=$(cat $s/tx_bytes) " +
  "rx-packets=$(cat $s/rx_packets) rx-bytes=$(cat $s/rx_bytes) irq=$(row $d /proc/interrupts) " +
  "net-rx=$(row NET_RX: /proc/softirqs) net-tx=$(row NET_TX: /proc/softirqs) " +
  "task-jiffies=$(jif 2 4) irq-jiffies=$(jif 7 8) steal-jiffies=$(jif 9) end";

const list = (text: string | undefined): number[] =>
  (text ?? "").split(",").flatMap((v) => (v === "" ? [] : [Number(v)]));

export async function readGuestNet(console: GuestConsole): Promise<GuestNetReading> {
  console.send(READ_GUEST);
  const match = await console.waitFor(/VIRGA-NETCOUNT (tx-packets=\d[^\r\n]*) end\r?\n/, 30000);
  const f = fields(match[1] ?? "");
  return {
    txPackets: Number(f["tx-packets"]),
    txBytes: Number(f["tx-bytes"]),
    rxPackets: Number(f["rx-packets"]),
    rxBytes: Number(f["rx-bytes"]),
    irq: list(f.irq),
    netRx: list(f["net-rx"]),
    netTx: list(f["net-tx"]),
    taskJiffies: list(f["task-jiffies"]),
    irqJiffies: list(f["irq-jiffies"]),
    stealJiffies: list(f["steal-jiffies"]),
  };
}

/** virga-vmm's counters of the first NIC slot (virga-query-devices, docs/devices.md). */
export type VmmNetReading = Record<string, number>;

const VMM_KEYS = [
  "tx-frames",
  "tx-bytes",
  "tx-gso-frames",
  "tx-notifications",
  "tx-interrupts",
  "tx-blocked",
  "rx-frames",
  "rx-notifications",
  "rx-interrupts",
  "rx-dropped",
];

export async function readVmmNet(qmp: QmpClient): Promise<VmmNetReading> {
  const devices = (await qmp.execute("virga-query-devices")) as { net: Record<string, unknown>[] };
  const slot = devices.net[0] ?? {};
  const out: VmmNetReading = {};
  for (const key of VMM_KEYS) out[key] = Number(slot[key] ?? NaN);
  return out;
}

/** One direction of the stream, as counts per MiB moved. */
export interface NetCounts {
  guest: Record<string, number | string>;
  vmm?: Record<string, number>;
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const perCpu = (after: number[], before: number[]): string =>
  after.map((v, i) => v - (before[i] ?? 0)).join("/");
const round = (v: number, digits = 1): number => Number(v.toFixed(digits));

export function countsPerMiB(
  mib: number,
  guest: [GuestNetReading, GuestNetReading],
  vmm?: [VmmNetReading, VmmNetReading],
): NetCounts {
  const [g0, g1] = guest;
  const tx = g1.txPackets - g0.txPackets;
  const rx = g1.rxPackets - g0.rxPackets;
  const irq = sum(g1.irq) - sum(g0.irq);
  const counts: NetCounts = {
    guest: {
      "nic-irqs/MiB": round(irq / mib),
      "nic-irqs-per-cpu": perCpu(g1.irq, g0.irq),
      "tx-packets/MiB": round(tx / mib),
      "tx-bytes/packet": tx === 0 ? 0 : Math.round((g1.txBytes - g0.txBytes) / tx),
      "rx-packets/MiB": round(rx / mib),
      "rx-bytes/packet": rx === 0 ? 0 : Math.round((g1.rxBytes - g0.rxBytes) / rx),
      "net-rx-softirqs-per-cpu": perCpu(g1.netRx, g0.netRx),
      "net-tx-softirqs-per-cpu": perCpu(g1.netTx, g0.netTx),
      "task-jiffies-per-cpu": perCpu(g1.taskJiffies, g0.taskJiffies),
      "irq-jiffies-per-cpu": perCpu(g1.irqJiffies, g0.irqJiffies),
      "steal-jiffies-per-cpu": perCpu(g1.stealJiffies, g0.stealJiffies),
    },
  };
  if (vmm !== undefined) {
    const [v0, v1] = vmm;
    const d = (key: string): number => (v1[key] ?? NaN) - (v0[key] ?? NaN);
    counts.vmm = {
      "tx-frames/MiB": round(d("tx-frames") / mib),
      "tx-gso-share": round(d("tx-gso-frames") / Math.max(1, d("tx-frames")), 3),
      "tx-notifications/MiB": round(d("tx-notifications") / mib),
      "tx-interrupts/MiB": round(d("tx-interrupts") / mib),
      "tx-blocked": d("tx-blocked"),
      "rx-frames/MiB": round(d("rx-frames") / mib),
      "rx-notifications/MiB": round(d("rx-notifications") / mib),
      "rx-interrupts/MiB": round(d("rx-interrupts") / mib),
      "rx-dropped": d("rx-dropped"),
    };
  }
  return counts;
}

export function describeCounts(counts: NetCounts): string {
  const text = (record: Record<string, number | string>): string =>
    Object.entries(record)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(" ");
  return `guest ${text(counts.guest)}${counts.vmm === undefined ? "" : `; vmm ${text(counts.vmm)}`}`;
}
