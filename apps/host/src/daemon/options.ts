// virgad's command line.
import { SCOPES, type Scope } from "./credentials";

export const USAGE = `usage: virgad [options]
  --listen <host>:<port>   address to serve HTTP and websockets on (default 127.0.0.1:7788);
                           an address beyond loopback (not 127.0.0.0/8, ::1) is served
                           with TLS only, with a certificate made on first start
  --tls                    serve TLS on a loopback address too
  --run-dir <dir>          run directory: VMs, sockets, logs, tokens (default ./data/host)
  --image-dir <dir>        where kernels, initrds and disks may come from (repeatable;
                           default: build/guests and native/probe-guest/build of this
                           repository); <run-dir>/images is always one
  --print-token[=full|read]
                           print the bearer token of that scope (default full; created
                           if needed) and exit; 'read' may query and watch, not change
  --print-fingerprint      print the TLS certificate's SHA-256 fingerprint (creating the
                           certificate if needed) and exit
  --help, --version`;

export interface VirgadOptions {
  action: "run" | "print-token" | "print-fingerprint" | "help" | "version";
  /** The scope --print-token prints. */
  tokenScope: Scope;
  tls: boolean;
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
    tokenScope: "full",
    tls: false,
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
      case "--print-token": {
        options.action = "print-token";
        // Only `--print-token=read`: a bare next word stays an argument of its own.
        if (eq < 0) break;
        const scope = value();
        if (!(SCOPES as readonly string[]).includes(scope)) {
          throw new VirgadUsageError(`--print-token: expected full or read, got '${scope}'`);
        }
        options.tokenScope = scope as Scope;
        break;
      }
      case "--print-fingerprint":
        options.action = "print-fingerprint";
        break;
      case "--tls":
        options.tls = true;
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
