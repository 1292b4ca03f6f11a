// virgad's command line.

export const USAGE = `usage: virgad [options]
  --listen <host>:<port>   address to serve HTTP and websockets on (default 127.0.0.1:7788)
  --run-dir <dir>          run directory: VMs, sockets, logs, token (default ./data/host)
  --image-dir <dir>        where kernels, initrds and disks may come from (repeatable;
                           default: build/guests and native/probe-guest/build of this
                           repository); <run-dir>/images is always one
  --print-token            print the bearer token (creating it if needed) and exit
  --help, --version`;

export interface VirgadOptions {
  action: "run" | "print-token" | "help" | "version";
  host: string;
  port: number;
  runDir: string;
  imageDirs: string[] | undefined;
}

export class VirgadUsageError extends Error {}

function parseListen(value: string): { host: string; port: number } {
  const colon = value.lastIndexOf(":");
  const port = value.slice(colon + 1);
  if (colon <= 0 || !/^\d+$/.test(port) || Number(port) > 65535) {
    throw new VirgadUsageError(`--listen: expected <host>:<port>, got '${value}'`);
  }
  let host = value.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  return { host, port: Number(port) };
}

export function parseOptions(argv: readonly string[]): VirgadOptions {
  const options: VirgadOptions = {
    action: "run",
    host: "127.0.0.1",
    port: 7788,
    runDir: "./data/host",
    imageDirs: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw new VirgadUsageError(`${name}: missing value`);
      return next;
    };
    switch (name) {
      case "--listen":
        Object.assign(options, parseListen(value()));
        break;
      case "--run-dir":
        options.runDir = value();
        break;
      case "--image-dir":
        (options.imageDirs ??= []).push(value());
        break;
      case "--print-token":
        options.action = "print-token";
        break;
      case "--help":
      case "-h":
        options.action = "help";
        break;
      case "--version":
        options.action = "version";
        break;
      default:
        throw new VirgadUsageError(`unknown option '${arg}'`);
    }
  }
  if (options.runDir === "") throw new VirgadUsageError("--run-dir: empty");
  return options;
}
