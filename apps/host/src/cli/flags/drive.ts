// -drive file=<path>,id=<id>[,readonly=on|off][,direct=on|off][,if=none][,format=raw]
// A block backend; a -device virtio-blk-device,drive=<id> attaches it.
import { driveSchema, type Drive } from "../../config/vm-config";
import { checkReadableFile } from "../files";
import { checked, requireValue, type FlagModule } from "../flag";
import { escapeValue, formatSwitch, parseItems, parseSwitch } from "../options";
import { UsageError } from "../usage-error";

export const flag = "-drive";
export const syntax =
  "file=<path>,id=<id>[,readonly=on|off][,direct=on|off][,if=none][,format=raw]";
export const schema = driveSchema;

export function parse(value: string | null): Drive {
  const text = requireValue(flag, syntax, value);
  const bad = (problem: string): UsageError => UsageError.expected(flag, syntax, text, problem);
  const seen = new Set<string>();
  const drive: Partial<Drive> = { readOnly: false, direct: false };
  for (const item of parseItems(text)) {
    if (item.key === null) throw bad(`'${item.value}' needs a key`);
    if (seen.has(item.key)) throw bad(`'${item.key}' given twice`);
    seen.add(item.key);
    switch (item.key) {
      case "file":
        drive.file = item.value;
        break;
      case "id":
        drive.id = item.value;
        break;
      case "readonly":
      case "direct": {
        const on = parseSwitch(item.value);
        if (on === null) throw bad(`${item.key} must be on or off`);
        if (item.key === "readonly") drive.readOnly = on;
        else drive.direct = on;
        break;
      }
      case "if":
        if (item.value !== "none") throw bad(`if=${item.value} is not supported (only if=none)`);
        break;
      case "format":
        if (item.value !== "raw") throw bad(`format=${item.value} is not supported (only raw)`);
        break;
      default:
        throw bad(`unknown option '${item.key}'`);
    }
  }
  if (drive.file === undefined) throw bad("missing file=");
  if (drive.id === undefined) throw bad("missing id=");
  return checked({ flag, syntax, schema }, text, drive);
}

export function format(drive: Drive): string {
  return [
    `file=${escapeValue(drive.file)}`,
    `id=${escapeValue(drive.id)}`,
    `readonly=${formatSwitch(drive.readOnly)}`,
    `direct=${formatSwitch(drive.direct)}`,
  ].join(",");
}

export function validate(drive: Drive): void {
  checkReadableFile(flag, syntax, drive.file);
}

export const driveFlag: FlagModule<Drive> = {
  flag,
  syntax,
  arity: "value",
  repeatable: true,
  schema,
  parse,
  format,
  help: "block backend (raw file or block device)",
};
