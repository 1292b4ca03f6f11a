// The VM's control plane: started by the VM process (virga-vmm, native)
// when the first client connects to its -qmp socket. Serves QMP for that one VM
// and ends with it: on the VMM's shutdown or error event, after telling the
// QMP clients, and when the VMM's channel closes. Its stdin and stdout are
// /dev/null (they may be the guest's console); it logs to -D. If it dies,
// the VM process starts another on the same socket with the current run
// state; QMP clients reconnect, and descriptors from getfd are gone.
import { vmConfigSchema } from "../config/vm-config";
import { COMMAND_TABLE } from "../qmp/commands/index";
import { QmpServer } from "../qmp/server";
import { createLogger } from "./log";
import { Machine } from "./machine";
import { VmmChannel } from "./vmm-channel";

const CHANNEL_FD = 3;
/** The QMP socket, listening since before the guest ran. */
const QMP_LISTENER_FD = 4;

export async function main(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const native = require("@virga/native") as typeof import("@virga/native");
  const channel = new VmmChannel(CHANNEL_FD, native.sendWithFds);
  let server: QmpServer | null = null;
  let finishing = false;
  const finish = async (): Promise<void> => {
    if (finishing) return;
    finishing = true;
    // Clients read what they were sent (SHUTDOWN) before the socket goes.
    await server?.close();
    process.exit(0);
  };
  // Ctrl-C and kill belong to the VM process, which tells us when to go.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(signal, () => undefined);
  channel.onClose(() => void finish());

  const hello = await channel.hello();
  const config = vmConfigSchema.parse(hello.config);
  const qmp = config.qmp;
  if (qmp === undefined) throw new Error("started without -qmp");
  const log = createLogger(config.logFile);
  const machine = new Machine(
    config,
    channel,
    hello.ptyPath,
    (reason) => {
      if (reason.reason === "host-qmp-quit") channel.quit();
      void finish();
    },
    hello.status,
  );
  channel.onEvent((event) => {
    if (event.event === "shutdown") {
      machine.shutdown(event);
    } else if (event.event === "qmp") {
      machine.emit(event.name, event.data);
    } else {
      void finish();
    }
  });

  server = new QmpServer({
    endpoint: qmp,
    vm: machine,
    table: COMMAND_TABLE,
    socketReader: native.SocketReader,
    listeningFd: QMP_LISTENER_FD,
    log: (line) => {
      log.log(line);
    },
  });
  try {
    await server.listen();
  } catch (error) {
    channel.fail(error instanceof Error ? error.message : String(error));
    server = null;
    await finish();
  }
}
