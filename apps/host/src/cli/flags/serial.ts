// -serial stdio|pty|none|file,path=<path>|socket,path=<path>,server,nowait
// The guest's COM1. socket is a unix-socket server the VM does not wait for.
import { serialSchema, type Serial } from "../../config/vm-config";
import { checked, requireValue, type FlagModule } from "../flag";
import { escapeValue, parseItems } from "../options";
import { UsageError } from "../usage-error";

export const flag = "-serial";
export const syntax = "stdio|pty|none|file,path=<path>|socket,path=<path>,server,nowait";
export const schema = serialSchema;

export function parse(value: string | null): Serial {
  const text = requireValue(flag, syntax, value);
  const bad = (problem: string): UsageError => UsageError.expected(flag, syntax, text, problem);
  const [head, ...rest] = parseItems(text);
  if (head === undefined || head.key !== null) throw bad("missing backend");
  // QEMU's short forms: file:<path> and unix:<path>,server,nowait.
  let kind = head.value;
  let path: string | undefined;
  if (kind.startsWith("file:")) [kind, path] = ["file", kind.slice(5)];
  else if (kind.startsWith("unix:")) [kind, path] = ["socket", kind.slice(5)];
  const switches = new Set<string>();
  for (const item of rest) {
    if (item.key === "path" && path === undefined) path = item.value;
    else if (item.key === null && (item.value === "server" || item.value === "nowait")) {
      switches.add(item.value);
    } else throw bad(`unknown option '${item.key ?? item.value}'`);
  }
  switch (kind) {
    case "stdio":
    case "pty":
    case "none":
      if (path !== undefined || switches.size > 0) throw bad(`${kind} takes no options`);
      return { kind };
    case "file":
      if (switches.size > 0) throw bad("file takes only path=");
      return checked({ flag, syntax, schema }, text, { kind, path: path ?? "" });
    case "socket":
      if (!switches.has("server") || !switches.has("nowait")) {
        throw bad("socket must be server,nowait (a listening unix socket)");
      }
      return checked({ flag, syntax, schema }, text, { kind, path: path ?? "" });
    default:
      throw bad(`unknown backend '${kind}'`);
  }
}

export function format(serial: Serial): string {
  switch (serial.kind) {
    case "file":
      return `file,path=${escapeValue(serial.path)}`;
    case "socket":
      return `socket,path=${escapeValue(serial.path)},server,nowait`;
    default:
      return serial.kind;
  }
}

export const serialFlag: FlagModule<Serial> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "serial console backend (default stdio; none with -daemonize)",
};
