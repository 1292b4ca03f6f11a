// What a VMM whose guest went quiet is doing, taken inside L1 before the
// process is killed: each thread's state and kernel stack, and three
// seconds of L1's KVM tracepoints. A vCPU re-entered without end at one
// instruction, with no exit reaching virga-vmm (the nested page fault loop
// in nested/README.md), is L1's emulated SVM at fault. A vCPU that halts
// and takes only timer interrupts is a guest waiting, perhaps on one of
// our devices; exits to virga-vmm show what the guest is asking of it.
// Enabling tracepoints patches L1's kernel text, which QEMU's TCG has
// mishandled before (nested/README.md): if that hangs L1, the harness's
// heartbeat catches it.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const TRACEFS = "/sys/kernel/tracing";
const EVENTS = [
  "kvm_entry",
  "kvm_exit",
  "kvm_pio",
  "kvm_mmio",
  "kvm_userspace_exit",
  "kvm_inj_virq",
  "kvm_apic_accept_irq",
  "kvm_ioapic_set_irq",
  "kvm_set_irq",
];
const TRACE_MS = 3000;
/** Starts every report, so a failure's text shows whether one was taken. */
export const STALL_REPORT_MARK = "--- stall report";

function readOr(file: string, fallback = "?"): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return fallback;
  }
}

function threads(pid: number): string[] {
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return [`pid ${pid} is gone`];
  return readdirSync(dir).map((tid) => {
    const task = path.join(dir, tid);
    // Field 3 of stat is the state; the command name before it may hold spaces.
    const stat = readOr(path.join(task, "stat"));
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    const stack = readOr(path.join(task, "stack"), "")
      .split("\n")
      .slice(0, 4)
      .map((frame) => frame.replace(/^\[<[0-9a-f]+>\] /, ""))
      .join(" < ");
    return `${tid} ${readOr(path.join(task, "comm"))} ${state} wchan=${readOr(path.join(task, "wchan"))} ${stack}`;
  });
}

function traceKvm(): string[] {
  if (!existsSync(path.join(TRACEFS, "events"))) {
    execFileSync("mount", ["-t", "tracefs", "nodev", TRACEFS], { stdio: "ignore" });
  }
  const write = (file: string, value: string): void =>
    writeFileSync(path.join(TRACEFS, file), value);
  const enabled = EVENTS.filter((event) => existsSync(path.join(TRACEFS, "events", "kvm", event)));
  write("tracing_on", "0");
  write("buffer_size_kb", "4096");
  write("trace", "");
  for (const event of enabled) write(`events/kvm/${event}/enable`, "1");
  write("tracing_on", "1");
  execFileSync("sleep", [String(TRACE_MS / 1000)]);
  write("tracing_on", "0");
  const lines = readFileSync(path.join(TRACEFS, "trace"), "utf8")
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"));
  for (const event of enabled) write(`events/kvm/${event}/enable`, "0");
  write("trace", "");
  const counts = new Map<string, number>();
  for (const line of lines) {
    const name = / (kvm_[a-z_]+):/.exec(line)?.[1] ?? "other";
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const summary = [...counts].map(([name, n]) => `${name}=${n}`).join(" ") || "no KVM events";
  return [`kvm events in ${TRACE_MS} ms: ${summary}`, ...lines.slice(-40)];
}

/** A few dozen lines on what process `pid` and its vCPUs are doing now. */
export function stallReport(pid: number): string {
  const out = [`${STALL_REPORT_MARK} (threads: tid name state wait point):`, ...threads(pid)];
  try {
    out.push(...traceKvm());
  } catch (error) {
    out.push(`no KVM trace: ${error instanceof Error ? error.message : String(error)}`);
  }
  return out.join("\n");
}
