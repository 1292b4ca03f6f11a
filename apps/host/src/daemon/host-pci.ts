// The host's PCI functions, as candidates for VFIO pass-through
// (`vfio-pci,host=`): read from sysfs, which is where the kernel keeps
// what lspci shows, plus the IOMMU group and bound driver VFIO cares about.
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";
import { HOST_PCI_PATTERN } from "../config/vm-config";

export const PCI_SYSFS = "/sys/bus/pci/devices";
/** VFIO's container device: without it no vfio-pci device can be opened. */
export const VFIO_CONTAINER = "/dev/vfio/vfio";

export interface HostPciDevice {
  /** domain:bus:slot.function, e.g. 0000:00:1f.2. */
  address: string;
  /** Four hex digits each, without 0x. */
  vendor: string;
  device: string;
  /** Class, subclass and programming interface: six hex digits. */
  class: string;
  /** null when the host has no IOMMU (no group, so no VFIO for it). */
  iommuGroup: number | null;
  /** The bound driver (vfio-pci when it is ready for pass-through); null when none. */
  driver: string | null;
}

export interface HostPci {
  devices: HostPciDevice[];
  /** Whether /dev/vfio/vfio exists (the vfio module is loaded). */
  vfio: boolean;
}

function hexFile(dir: string, name: string, digits: number): string {
  const text = readFileSync(path.join(dir, name), "utf8").trim();
  return text.replace(/^0x/, "").padStart(digits, "0");
}

function linkName(dir: string, name: string): string | null {
  try {
    return path.basename(readlinkSync(path.join(dir, name)));
  } catch {
    return null;
  }
}

function readDevice(root: string, address: string): HostPciDevice {
  const dir = path.join(root, address);
  const group = linkName(dir, "iommu_group");
  return {
    address,
    vendor: hexFile(dir, "vendor", 4),
    device: hexFile(dir, "device", 4),
    class: hexFile(dir, "class", 6),
    iommuGroup: group === null ? null : Number(group),
    driver: linkName(dir, "driver"),
  };
}

/** Every PCI function of the host, in address order. */
export function hostPci(root = PCI_SYSFS): HostPci {
  const addresses = existsSync(root)
    ? readdirSync(root)
        .filter((name) => HOST_PCI_PATTERN.test(name))
        .sort()
    : [];
  return { devices: addresses.map((a) => readDevice(root, a)), vfio: existsSync(VFIO_CONTAINER) };
}

/** Whether the host has this PCI function. */
export function hostHasPci(address: string, root = PCI_SYSFS): boolean {
  return HOST_PCI_PATTERN.test(address) && existsSync(path.join(root, address));
}
