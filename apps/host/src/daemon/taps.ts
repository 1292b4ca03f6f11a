// Taps virgad makes for NICs on a bridge. virgad runs as root, so it
// creates a persistent tap with iproute2, enslaves it to the bridge and sets
// it up; the VM process opens it by name (docs/devices.md). A tap's name is
// derived from the VM's directory and the NIC slot, so it is the same every
// time and two VMs (or two virgads) never pick the same one. Persistent taps
// outlive the VM process (a restart finds its tap) but not a host reboot,
// which is why a VM's start re-creates the ones it owns.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { INTERFACE_NAME_RULE, isInterfaceName } from "../config/vm-config";
import { DaemonError, badRequest } from "./errors";

export interface OwnedTap {
  ifname: string;
  bridge: string;
}

/** "vg" + 8 hex digits of the VM directory's hash + "n" + slot: 12 bytes, under IFNAMSIZ. */
export function tapName(vmDir: string, slot: number): string {
  return `vg${createHash("sha256").update(vmDir).digest("hex").slice(0, 8)}n${slot}`;
}

export function interfaceExists(name: string): boolean {
  return isInterfaceName(name) && existsSync(`/sys/class/net/${name}`);
}

function ip(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("ip", args, { timeout: 10000 }, (error, _stdout, stderr) => {
      if (error === null) {
        resolve();
        return;
      }
      const why =
        (error as NodeJS.ErrnoException).code === "ENOENT"
          ? "the ip command (iproute2) is not installed"
          : stderr.trim() || error.message;
      reject(new DaemonError("INTERNAL_SERVER_ERROR", `ip ${args.join(" ")}: ${why}`));
    });
  });
}

/** Refuses a bridge that does not exist or is another kind of interface, naming `field`. */
export function checkBridge(field: string, bridge: string): void {
  if (!isInterfaceName(bridge)) {
    throw badRequest(`${field}: '${bridge}' is not an interface name (${INTERFACE_NAME_RULE})`);
  }
  if (!existsSync(`/sys/class/net/${bridge}`)) {
    throw badRequest(
      `${field}: bridge '${bridge}' does not exist (create it with: ip link add ${bridge} type bridge)`,
    );
  }
  if (!existsSync(`/sys/class/net/${bridge}/bridge`)) {
    throw badRequest(`${field}: '${bridge}' is a network interface but not a bridge`);
  }
}

/** A new persistent tap on `bridge`, up; nothing is left behind if a step fails. */
export async function createTap(tap: OwnedTap, field = "bridge"): Promise<void> {
  checkBridge(field, tap.bridge);
  await ip(["tuntap", "add", "dev", tap.ifname, "mode", "tap"]);
  try {
    await ip(["link", "set", "dev", tap.ifname, "master", tap.bridge]);
    await ip(["link", "set", "dev", tap.ifname, "up"]);
  } catch (error) {
    await deleteTap(tap.ifname).catch(() => undefined);
    throw error;
  }
}

export async function deleteTap(ifname: string): Promise<void> {
  if (interfaceExists(ifname)) await ip(["link", "del", "dev", ifname]);
}

/** Before a start: a tap this VM owns that is gone (host reboot) is made again. */
export async function ensureTap(tap: OwnedTap): Promise<void> {
  if (!interfaceExists(tap.ifname)) await createTap(tap, `tap '${tap.ifname}': bridge`);
}
