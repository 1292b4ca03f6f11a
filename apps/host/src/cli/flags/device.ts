// -device virtio-blk-device,drive=<id>[,id=<id>]
// Fills the microvm block slots 0..5 in command-line order (slot 0 is vda).
import { blockDeviceSchema, type BlockDevice } from "../../config/vm-config";
import { checked, requireValue, type FlagModule } from "../flag";
import { escapeValue, parseItems } from "../options";
import { UsageError } from "../usage-error";

export const flag = "-device";
export const syntax = "virtio-blk-device,drive=<drive id>[,id=<id>]";
export const schema = blockDeviceSchema;

const LATER: Record<string, string> = {
  "virtio-net-device": "needs -netdev, not supported yet",
  "virtio-blk-pci": "needs -machine q35, not supported yet",
  "virtio-net-pci": "needs -machine q35, not supported yet",
  "pcie-root-port": "needs -machine q35, not supported yet",
  "vfio-pci": "needs -machine q35, not supported yet",
  "virtio-balloon-device": "not supported yet",
};

export function parse(value: string | null): BlockDevice {
  const text = requireValue(flag, syntax, value);
  const bad = (problem: string): UsageError => UsageError.expected(flag, syntax, text, problem);
  const items = parseItems(text);
  // The driver first: an unsupported device gets its own message, whatever its options.
  const driverItem = items.find(
    (item, index) => item.key === "driver" || (index === 0 && item.key === null),
  );
  const driver = driverItem?.value;
  if (driver === undefined) throw bad("missing driver");
  if (driver !== "virtio-blk-device") {
    const later = LATER[driver];
    throw bad(later === undefined ? `unknown device '${driver}'` : `${driver} ${later}`);
  }
  const fields: { id?: string; drive?: string } = {};
  const seen = new Set<string>();
  for (const item of items) {
    if (item === driverItem) continue;
    const key = item.key;
    if (key === null) throw bad(`'${item.value}' needs a key`);
    if (seen.has(key)) throw bad(`'${key}' given twice`);
    seen.add(key);
    if (key === "drive" || key === "id") fields[key] = item.value;
    else throw bad(`unknown option '${key}'`);
  }
  if (fields.drive === undefined) throw bad("missing drive=");
  return checked({ flag, syntax, schema }, text, {
    driver,
    drive: fields.drive,
    id: fields.id ?? fields.drive,
  });
}

export function format(device: BlockDevice): string {
  return `${device.driver},drive=${escapeValue(device.drive)},id=${escapeValue(device.id)}`;
}

export const deviceFlag: FlagModule<BlockDevice> = {
  flag,
  syntax,
  arity: "value",
  repeatable: true,
  schema,
  parse,
  format,
  help: "guest device (virtio-blk-device, up to 6)",
};
