// virga-vmm's entry: flags → VmConfig → (daemonize) → run the VM.
// Exit codes: 0 shutdown, 1 VMM error, 2 usage error.
import { VERSION } from "../version";
import { parseCommandLine, usage, validateFiles, type Invocation } from "./command-line";
import { UsageError } from "./usage-error";

export async function main(argv: readonly string[]): Promise<void> {
  let invocation: Invocation;
  try {
    invocation = parseCommandLine(argv);
    if (invocation.action === "run") validateFiles(invocation.config);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`virga-vmm: ${error.message}\n`);
    process.exit(2);
  }
  if (invocation.action === "help") {
    process.stdout.write(usage() + "\n");
    return;
  }
  if (invocation.action === "version") {
    process.stdout.write(`virga-vmm ${VERSION}\n`);
    return;
  }
  const { config } = invocation;
  const { daemonChannel } = await import("../vmm/daemonize");
  const channel = config.daemonize ? daemonChannel() : null;
  if (config.daemonize && channel === null) {
    const { daemonize } = await import("../vmm/daemonize");
    process.exit(await daemonize(argv, config));
  }
  const { runVm } = await import("../vmm/run");
  await runVm(config, channel);
}
