// L1's side of the network scenarios and benchmark: taps (on a bridge or
// with an address of their own) and TCP streams through virga-io, the
// static tool of test/images/virga-io that the L2 guest carries too.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../support/paths";
import { makeTap } from "../support/tap";
import { fields } from "./guest-scenario";

export const virgaIo = path.join(repoRoot, "build", "guests", "tools", "virga-io");

function ip(...args: string[]): void {
  try {
    execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? "";
    throw new Error(`ip ${args.join(" ")} failed: ${stderr || String(error)}`);
  }
}

export interface L1Tap {
  tap: string;
  /** L1's address on the tap's network, without the prefix. */
  address: string;
  remove(): void;
}

/**
 * A persistent tap (the VMM opens it by name) whose network L1 is on with
 * `address` (CIDR): on the tap itself, or with `bridge` on a bridge the tap
 * is a port of (the hot-plug scenario's shape: VMs on a host bridge).
 */
export function createTap(prefix: string, address: string, bridge?: string): L1Tap {
  const tap = makeTap(prefix);
  let bridgeMade = false;
  const remove = (): void => {
    tap.remove();
    if (bridgeMade) {
      try {
        ip("link", "del", bridge ?? "");
      } catch {
        // already gone
      }
    }
  };
  try {
    if (bridge !== undefined) {
      ip("link", "add", bridge, "type", "bridge");
      bridgeMade = true;
      ip("link", "set", tap.name, "master", bridge);
      ip("addr", "add", address, "dev", bridge);
      ip("link", "set", bridge, "up");
    } else {
      ip("addr", "add", address, "dev", tap.name);
    }
  } catch (error) {
    remove();
    throw error;
  }
  return { tap: tap.name, address: address.split("/")[0] ?? address, remove };
}

function requireVirgaIo(): void {
  if (!existsSync(virgaIo))
    throw new Error(`${virgaIo} missing: apps/host/test/images/build.sh builds it`);
}

/** Runs virga-io in L1 and resolves with the fields of its result line. */
function runVirgaIo(
  args: string[],
  timeoutMs: number,
  onLine?: (line: string) => void,
): Promise<Record<string, string>> {
  requireVirgaIo();
  const child = spawn(virgaIo, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    const before = stdout.split("\n").length - 1;
    stdout += chunk;
    const lines = stdout.split("\n");
    for (const line of lines.slice(before, -1)) onLine?.(line);
  });
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`virga-io ${args.join(" ")} in L1: no result within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      const result = stdout
        .split("\n")
        .filter((l) => l.startsWith("VIRGA-IO ") && !l.includes(" listening "))
        .at(-1);
      if (code === 0 && result !== undefined) resolve(fields(result));
      else
        reject(
          new Error(`virga-io ${args.join(" ")} in L1 exited ${String(code)}: ${stderr.trim()}`),
        );
    });
  });
}

/** L1 receives one TCP stream on `port`; `listening` resolves once it accepts connections. */
export function l1Receive(
  port: number,
  timeoutMs = 120000,
): { listening: Promise<void>; result: Promise<Record<string, string>> } {
  let ready: () => void = () => undefined;
  const listening = new Promise<void>((resolve) => (ready = resolve));
  const result = runVirgaIo(["tcp-recv", String(port)], timeoutMs, (line) => {
    if (line.includes(" listening ")) ready();
  });
  // A receiver that fails before listening must not leave `listening` hanging.
  return { listening: Promise.race([listening, result.then(() => undefined)]), result };
}

/** L1 sends `mib` MiB to address:port (retrying the connection while the peer starts). */
export function l1Send(
  address: string,
  port: number,
  mib: number,
  timeoutMs = 120000,
): Promise<Record<string, string>> {
  return runVirgaIo(["tcp-send", address, String(port), String(mib)], timeoutMs);
}
