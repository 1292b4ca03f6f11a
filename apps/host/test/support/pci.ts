// The probe guest's `pci` commands, as host tests read them, and QMP
// refusals checked by their text.
import assert from "node:assert/strict";
import { QmpReplyError, type QmpClient } from "../../src/qmp/client";
import type { VmmProcess } from "./guest";

const ANSWER_MS = 30000;

/** The scan's functions, as "BB:DD.F VVVV:DDDD CCCCCC", in scan order. */
export function pciFunctions(lines: readonly string[]): string[] {
  return lines.filter((l) => /^pci [0-9a-f]{2}:/.test(l)).map((l) => l.slice("pci ".length));
}

/** The lines a probe command printed that start with `prefix`, once `done` shows. */
export async function probeLines(
  vm: VmmProcess,
  command: string,
  prefix: string,
  done: RegExp,
): Promise<string[]> {
  const before = vm.serial.lines(/^pci /).length;
  vm.send(command);
  await vm.waitFor(done, ANSWER_MS);
  return vm.serial
    .lines(/^pci /)
    .slice(before)
    .filter((l) => l.startsWith(prefix))
    .map((l) => l.slice(prefix.length));
}

/** `pci slot <bdf> [action]`: the slot's control, status, link status and interrupt count. */
export async function slot(
  vm: VmmProcess,
  bdf: string,
  action = "",
): Promise<{ ctl: number; sta: number; link: number; irqs: number }> {
  const [line] = await probeLines(
    vm,
    `pci slot ${bdf} ${action}`.trim(),
    `pci ${bdf} slot `,
    /OK pci slot|ERR pci/,
  );
  const m = /^ctl=0x([0-9a-f]+) sta=0x([0-9a-f]+) link=0x([0-9a-f]+) irqs=(\d+)$/.exec(line ?? "");
  assert.ok(m, `pci slot printed '${line}'`);
  const [, ctl = "", sta = "", link = "", irqs = ""] = m;
  return {
    ctl: parseInt(ctl, 16),
    sta: parseInt(sta, 16),
    link: parseInt(link, 16),
    irqs: Number(irqs),
  };
}

/** A QMP request refused with a desc matching `pattern`. */
export async function refusedWith(
  qmp: QmpClient,
  command: string,
  args: Record<string, unknown>,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(qmp.execute(command, args), (error: unknown) => {
    assert.ok(error instanceof QmpReplyError, String(error));
    // The desc, after the class.
    assert.match(error.message.slice(error.errorClass.length + 2), pattern);
    return true;
  });
}
