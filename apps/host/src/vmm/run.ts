// One VM process from start to exit. The path to vm.start() is kept lean for
// boot time: the native addon is the only heavy load before it; the QMP
// server and command table are loaded once the vCPUs run.
//
// Exit: guest power-off/reset, QMP quit and SIGTERM/SIGINT emit SHUTDOWN and
// exit 0; a VMM error exits 1 with "virga-vmm: error: <reason>" on stderr.
// Either way the VM is destroyed and the QMP socket and pidfile removed.
import type { VmConfig } from "../config/vm-config";
import type { QmpServer } from "../qmp/server";
import type { ShutdownReason } from "./control";
import type { DaemonChannel } from "./daemonize";
import { createLogger, type Logger } from "./log";
import { Machine, type NativeVm } from "./machine";
import { toNativeConfig } from "./native-config";
import { removePidfile, writePidfile } from "./pidfile";

interface Destroyable extends NativeVm {
  destroy(): void;
}

class VmProcess {
  private readonly log: Logger;
  private vm: Destroyable | null = null;
  private server: QmpServer | null = null;
  private serverStarting: Promise<void> | null = null;
  private finishing = false;
  private pidfileWritten = false;
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    private readonly config: VmConfig,
    private readonly daemon: DaemonChannel | null,
  ) {
    this.log = createLogger(config.logFile);
    // The native threads do not hold the event loop open by themselves.
    this.keepAlive = setInterval(() => undefined, 1 << 30);
  }

  async run(): Promise<void> {
    const { config, log } = this;
    log.log(
      `starting ${config.name ?? "vm"}: ${config.smp.cpus} vCPU(s), ${config.memoryBytes / 1048576} MiB`,
    );
    let machine: Machine | null = null;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const native = require("@virga/native") as typeof import("@virga/native");
      const vm = new native.Vm(toNativeConfig(config), (event) => {
        machine?.handleNativeEvent(event);
      });
      this.vm = vm;
      machine = new Machine(
        config,
        vm,
        (reason) => void this.shutdown(reason),
        (message) => void this.finish(1, message),
      );
    } catch (error) {
      await this.finish(1, error instanceof Error ? error.message : String(error));
      return;
    }
    const pty = config.serial.kind === "pty" ? this.vm.serialPtyPath() : null;
    if (pty !== null && this.daemon === null) {
      process.stderr.write(`char device redirected to ${pty} (label serial0)\n`);
    }
    if (config.pidfile !== undefined) {
      writePidfile(config.pidfile);
      this.pidfileWritten = true;
    }
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      process.on(signal, () => {
        log.log(`received ${signal}`);
        machine.shutdown({ guest: false, reason: "host-signal" });
      });
    }
    machine.start();
    // Time since process start: the JavaScript share of boot time.
    const since = `${performance.now().toFixed(1)} ms after process start`;
    log.log(
      config.startPaused
        ? `vCPUs created, paused (prelaunch), ${since}`
        : `vCPUs running, ${since}`,
    );

    if (config.qmp !== undefined) {
      this.serverStarting = this.startQmp(machine, config.qmp);
      try {
        await this.serverStarting;
      } catch (error) {
        await this.finish(1, `QMP: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
    }
    this.daemon?.ready(pty);
  }

  private async startQmp(machine: Machine, endpoint: NonNullable<VmConfig["qmp"]>): Promise<void> {
    const { QmpServer } = await import("../qmp/server");
    const { COMMAND_TABLE } = await import("../qmp/commands/index");
    const server = new QmpServer({
      endpoint,
      vm: machine,
      table: COMMAND_TABLE,
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      socketReader: (require("@virga/native") as typeof import("@virga/native")).SocketReader,
      log: (line) => {
        this.log.log(line);
      },
    });
    this.server = server;
    await server.listen();
  }

  private async shutdown(reason: ShutdownReason): Promise<void> {
    this.log.log(`shutdown: ${reason.reason}`);
    await this.finish(0);
  }

  /** Tears everything down once; the SHUTDOWN event (if any) was already queued to clients. */
  private async finish(code: number, error?: string): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    if (error !== undefined) {
      process.stderr.write(`virga-vmm: error: ${error}\n`);
      this.log.log(`error: ${error}`);
      this.daemon?.fail(error);
    }
    // Stop the guest first, then let clients read what they were sent.
    try {
      this.vm?.destroy();
    } catch (destroyError) {
      this.log.log(`destroy: ${String(destroyError)}`);
    }
    if (this.serverStarting !== null) await this.serverStarting.catch(() => undefined);
    await this.server?.close();
    if (this.pidfileWritten && this.config.pidfile !== undefined)
      removePidfile(this.config.pidfile);
    this.log.log(`exit ${code}`);
    this.log.close();
    clearInterval(this.keepAlive);
    process.exit(code);
  }
}

export async function runVm(config: VmConfig, daemon: DaemonChannel | null): Promise<void> {
  await new VmProcess(config, daemon).run();
}
