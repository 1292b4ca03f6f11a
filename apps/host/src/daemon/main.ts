// virgad's entry: options → daemon (re-attaching to running VMs) → server.
// SIGTERM/SIGINT stop virgad only: the VMs keep running, and the next
// virgad on the same run directory takes them back.
import { VERSION } from "../version";
import { Daemon } from "./daemon";
import { USAGE, VirgadUsageError, parseOptions, type VirgadOptions } from "./options";
import { RunDir } from "./run-dir";
import { startServer } from "./server";

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} virgad[${process.pid}]: ${line}\n`);
}

export async function main(argv: readonly string[]): Promise<void> {
  let options: VirgadOptions;
  try {
    options = parseOptions(argv);
  } catch (error) {
    if (!(error instanceof VirgadUsageError)) throw error;
    process.stderr.write(`virgad: ${error.message}\n${USAGE}\n`);
    process.exit(2);
  }
  switch (options.action) {
    case "help":
      process.stdout.write(USAGE + "\n");
      return;
    case "version":
      process.stdout.write(`virgad ${VERSION}\n`);
      return;
    case "print-token": {
      const run = new RunDir(options.runDir);
      run.prepare();
      process.stdout.write(run.token() + "\n");
      return;
    }
    case "run":
      break;
  }
  const daemon = await Daemon.open({
    runDir: options.runDir,
    imageDirs: options.imageDirs,
    migrationAddress: options.host,
    log,
  });
  const server = await startServer({ daemon, host: options.host, port: options.port, log });
  const shown = server.host.includes(":") ? `[${server.host}]` : server.host;
  log(`image directories: ${daemon.images.describe()}`);
  process.stdout.write(
    `virgad: listening on http://${shown}:${server.port} (run directory ${daemon.run.root}, token in ${daemon.run.tokenFile})\n`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping (VMs keep running)`);
    void (async () => {
      await server.close();
      await daemon.close();
      process.exit(0);
    })();
  };
  process.on("SIGTERM", () => {
    stop("SIGTERM");
  });
  process.on("SIGINT", () => {
    stop("SIGINT");
  });
}
