// Lifecycle: query-status, stop, cont, quit, system_reset, system_powerdown.
import { z } from "zod";
import { defineCommand } from "../command";
import { genericError } from "../wire";

const none = z.object({}).strict();

export const queryStatus = defineCommand({
  name: "query-status",
  args: none,
  handler(_args, { vm }) {
    const status = vm.status();
    return { running: status === "running", singlestep: false, status };
  },
});

/** STOP is emitted by vm.pause() before this returns, so it precedes {}. */
export const stop = defineCommand({
  name: "stop",
  args: none,
  async handler(_args, { vm }) {
    await vm.pause();
    return {};
  },
});

export const cont = defineCommand({
  name: "cont",
  args: none,
  async handler(_args, { vm }) {
    await vm.resume();
    return {};
  },
});

/** Answers {} first; SHUTDOWN follows and the process exits 0. */
export const quit = defineCommand({
  name: "quit",
  args: none,
  handler(_args, ctx) {
    const { vm } = ctx;
    ctx.afterReply(() => {
      vm.shutdown({ guest: false, reason: "host-qmp-quit" });
    });
    return {};
  },
});

/** RESET precedes {}; the guest starts again from its kernel entry. */
export const systemReset = defineCommand({
  name: "system_reset",
  args: none,
  async handler(_args, { vm }) {
    if (vm.status() === "shutdown") throw genericError("the VM has shut down");
    await vm.reset();
    return {};
  },
});

/** POWERDOWN precedes {}; an ACPI-aware guest powers off, others ignore it. */
export const systemPowerdown = defineCommand({
  name: "system_powerdown",
  args: none,
  async handler(_args, { vm }) {
    if (vm.status() === "shutdown") throw genericError("the VM has shut down");
    await vm.powerdown();
    return {};
  },
});
