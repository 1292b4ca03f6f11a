// dist/control-host.cjs's entry (scripts/bundle.mjs): the control-plane host
// that virgad starts for its run directory (control-host.ts).
//   node --force-node-api-uncaught-exceptions-policy=true control-host.cjs \
//        --socket <path> [--pidfile <path>]
// The flag lets an exception thrown in an addon callback (a QMP client's
// native reader) reach the uncaughtException handler below, which ends only
// the VM it came from. SIGTERM/SIGINT: stop listening, remove the socket
// and pidfile, exit; the VMs find their control plane again on their own.
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { ControlHost } from "./control-host";

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} control-host[${process.pid}]: ${line}\n`);
}

function option(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? undefined : process.argv[index + 1];
}

async function main(): Promise<void> {
  const socketPath = option("socket");
  if (socketPath === undefined || socketPath === "") {
    process.stderr.write("usage: control-host.cjs --socket <path> [--pidfile <path>]\n");
    process.exit(2);
  }
  const pidfile = option("pidfile");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const native = require("@virga/native") as typeof import("@virga/native");
  const host = await ControlHost.start({
    socketPath,
    socketReader: native.SocketReader,
    sendWithFds: native.sendWithFds,
    log,
  });
  const fatal = (kind: string, error: unknown): void => {
    if (host.handleUncaught(error)) return;
    log(`${kind}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  };
  process.on("uncaughtException", (error) => {
    fatal("uncaught exception", error);
  });
  process.on("unhandledRejection", (error) => {
    fatal("unhandled rejection", error);
  });
  if (pidfile !== undefined) writeFileSync(pidfile, `${process.pid}\n`, { mode: 0o600 });
  const stop = (signal: string): void => {
    log(`${signal}: stopping; the VMs take their control planes elsewhere`);
    void host.close().finally(() => {
      try {
        if (pidfile !== undefined && readFileSync(pidfile, "utf8").trim() === String(process.pid))
          unlinkSync(pidfile);
      } catch {
        // already gone
      }
      process.exit(0);
    });
  };
  process.on("SIGTERM", () => {
    stop("SIGTERM");
  });
  process.on("SIGINT", () => {
    stop("SIGINT");
  });
  process.on("SIGHUP", () => undefined);
  log(`serving control planes on ${socketPath}`);
}

main().catch((error: unknown) => {
  log(`cannot start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
