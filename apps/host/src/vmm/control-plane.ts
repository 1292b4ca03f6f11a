// The control plane of one VM: its Machine, its QMP server on the listening
// socket the VM process made, and the channel to that VM process. serveVm
// runs it for one VM; it runs in a companion process of that VM (main, below:
// started by the VM process when no control-plane host serves it) or, for
// many VMs at once, in the control-plane host (control-host.ts).
//
// A VM's part ends on the VMM's shutdown or error event, after telling the
// QMP clients, and when the VMM's channel closes; on a detach event it ends
// without the VM (the VM moves to the host). If it dies, the VM process
// starts another on the same socket with the current run state; QMP clients
// reconnect, and descriptors from getfd are gone.
import { vmConfigSchema } from "../config/vm-config";
import { COMMAND_TABLE } from "../qmp/commands/index";
import { QmpServer, type QmpServerOptions } from "../qmp/server";
import { companionChannel } from "./channel-link";
import { createLogger } from "./log";
import { Machine } from "./machine";
import type { Hello, VmmChannel } from "./vmm-channel";

const CHANNEL_FD = 3;
/** The QMP socket, listening since before the guest ran. */
const QMP_LISTENER_FD = 4;

export interface ServedVm {
  /** The VM's name and pid, for log lines. */
  readonly label: string;
  /** Settles once this VM's part has ended and let go of its sockets. */
  readonly ended: Promise<void>;
  /**
   * Ends this VM's part after a failure inside it, leaving the VM and its
   * socket file: the VM process is told to start its control plane again.
   */
  fail(error: unknown): void;
}

export interface ServeOptions {
  socketReader: NonNullable<QmpServerOptions["socketReader"]>;
  /** Called once the part has ended, to let go of the channel. */
  onEnd: () => void;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/**
 * Serves QMP for the VM behind `channel` on `listeningFd` (which it owns
 * from now on). Throws when the hello does not describe a VM with -qmp.
 */
export async function serveVm(
  channel: VmmChannel,
  hello: Hello,
  listeningFd: number,
  options: ServeOptions,
): Promise<ServedVm> {
  const config = vmConfigSchema.parse(hello.config);
  const qmp = config.qmp;
  if (qmp === undefined) throw new Error("started without -qmp");
  const log = createLogger(config.logFile, hello.pid);
  let server: QmpServer | null = null;
  let ending: Promise<void> | null = null;
  let markEnded: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (markEnded = resolve));
  const end = (): Promise<void> => {
    ending ??= (async () => {
      try {
        // Clients read what they were sent (SHUTDOWN) before the socket goes.
        // The socket file is the VM process's: it made it and removes it as
        // it exits, and the VM may go on (a failure here, a detach).
        await server?.close({ keepSocketFile: true });
      } finally {
        machine.fds.closeAll();
        log.close();
        options.onEnd();
        markEnded();
      }
    })();
    return ending;
  };
  const machine = new Machine(
    config,
    channel,
    hello.ptyPath,
    (reason) => {
      if (reason.reason === "host-qmp-quit") channel.quit();
      void end();
    },
    hello.status,
  );
  channel.onClose(() => void end());
  channel.onEvent((event) => {
    if (event.event === "shutdown") machine.shutdown(event);
    else if (event.event === "qmp") machine.emit(event.name, event.data);
    else if (event.event === "migration") machine.onMigrationEvent(event);
    else void end();
  });

  server = new QmpServer({
    endpoint: qmp,
    vm: machine,
    table: COMMAND_TABLE,
    socketReader: options.socketReader,
    listeningFd,
    log: (line) => {
      log.log(line);
    },
  });
  try {
    await server.listen();
  } catch (error) {
    channel.fail(error instanceof Error ? error.message : String(error));
    server = null;
    void end();
  }
  return {
    label: config.name === undefined ? `pid ${hello.pid}` : `${config.name} (pid ${hello.pid})`,
    ended,
    fail(error) {
      if (ending !== null) return;
      log.log(`control plane failed: ${messageOf(error)}`);
      channel.restart(error instanceof Error ? error.message : String(error));
      void end();
    },
  };
}

/** A companion's entry: one VM, on fds 3 and 4; exits with the VM's part. */
export async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const native = require("@virga/native") as typeof import("@virga/native");
  const channel = companionChannel(CHANNEL_FD, native.sendWithFds);
  // Ctrl-C and kill belong to the VM process, which tells us when to go.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(signal, () => undefined);
  channel.onClose(() => process.exit(0));
  const hello = await channel.hello();
  await serveVm(channel, hello, QMP_LISTENER_FD, {
    socketReader: native.SocketReader,
    onEnd: () => process.exit(0),
  });
}
