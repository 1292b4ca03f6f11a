// Frames between a test and a guest's NIC through a host tap, with
// clients/tap_io.py (a raw packet socket on the tap's interface).
import { execFile, spawn } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "./paths";

const execFileAsync = promisify(execFile);
export const ETHERTYPE = "0x88b5"; // IEEE local experimental: nothing else on the tap uses it
export const tapIo = path.join(repoRoot, "apps", "host", "test", "clients", "tap_io.py");

export interface Frame {
  len: number;
  dst: string;
  src: string;
  type: string;
  seed: number | null;
}

/** Starts listening on the tap for one frame; resolves once it arrived (or timed out). */
export async function receiveOnTap(ifname: string, timeoutS = 10): Promise<() => Promise<Frame>> {
  const child = spawn("/usr/bin/python3", [tapIo, ifname, "recv", ETHERTYPE, String(timeoutS)]);
  let out = "";
  child.stdout.setEncoding("utf8");
  let listening: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (listening = resolve));
  child.stdout.on("data", (chunk: string) => {
    out += chunk;
    if (out.includes('"listening"')) listening();
  });
  const done = new Promise<Frame>((resolve, reject) => {
    child.on("exit", () => {
      const last = out.trim().split("\n").pop() ?? "";
      const parsed = JSON.parse(last) as Frame & { timeout?: boolean };
      if (parsed.timeout === true) reject(new Error(`no frame on ${ifname} within ${timeoutS} s`));
      else resolve(parsed);
    });
  });
  await ready;
  return () => done;
}

export async function sendOnTap(
  ifname: string,
  dst: string,
  len: number,
  seed: number,
): Promise<void> {
  await execFileAsync("/usr/bin/python3", [
    tapIo,
    ifname,
    "send",
    dst,
    ETHERTYPE,
    String(len),
    String(seed),
  ]);
}
