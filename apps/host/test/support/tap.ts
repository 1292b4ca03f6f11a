// Taps for host tests. Creating one needs CAP_NET_ADMIN (the tests run as
// root, like CI); without it the test fails saying so, it never skips.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

let counter = 0;

export function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

export function requireTaps(): void {
  if (!existsSync("/dev/net/tun"))
    throw new Error("/dev/net/tun not present: NIC tests need tun/tap");
  if (process.getuid?.() !== 0)
    throw new Error("NIC tests create taps and need root (CAP_NET_ADMIN)");
}

/** A fresh tap (up), named uniquely for this process; remove() deletes it. */
export function makeTap(prefix = "vt"): { name: string; remove: () => void } {
  const name = `${prefix}${process.pid % 100000}x${counter++}`.slice(0, 15);
  ip(["tuntap", "add", name, "mode", "tap"]);
  ip(["link", "set", name, "up"]);
  return {
    name,
    remove: () => {
      try {
        ip(["link", "del", name]);
      } catch {
        // already gone
      }
    },
  };
}

/**
 * A bridge for one test file, named uniquely for this process; remove()
 * deletes it with any tap a failed test left on it.
 */
export function testBridge(prefix: string): {
  name: string;
  create: () => void;
  remove: () => void;
} {
  const name = `${prefix}${process.pid % 100000}`.slice(0, 15);
  return {
    name,
    create: () => {
      ip(["link", "add", name, "type", "bridge"]);
    },
    remove: () => {
      const leftOver = execFileSync("ip", ["-o", "link", "show", "master", name], {
        encoding: "utf8",
      });
      for (const match of leftOver.matchAll(/^\d+: ([^:@]+)/gm))
        ip(["link", "del", match[1] ?? ""]);
      ip(["link", "del", name]);
    },
  };
}
