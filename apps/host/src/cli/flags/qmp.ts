// -qmp unix:<path>,server,nowait | -qmp tcp:<host>:<port>,server,nowait
// Virga adds rate-limit=<n> (commands per second per client, 0 = unlimited).
import { DEFAULT_QMP_RATE_LIMIT, qmpSchema, type QmpEndpoint } from "../../config/vm-config";
import { checked, requireValue, type FlagModule } from "../flag";
import { escapeValue, parseItems } from "../options";
import { UsageError } from "../usage-error";

export const flag = "-qmp";
export const syntax = "unix:<path>,server,nowait|tcp:<host>:<port>,server,nowait[,rate-limit=n]";
export const schema = qmpSchema;

export function parse(value: string | null): QmpEndpoint {
  const text = requireValue(flag, syntax, value);
  const bad = (problem: string): UsageError => UsageError.expected(flag, syntax, text, problem);
  const [head, ...rest] = parseItems(text);
  if (head === undefined || head.key !== null) throw bad("missing address");
  const switches = new Set<string>();
  let rateLimit = DEFAULT_QMP_RATE_LIMIT;
  for (const item of rest) {
    if (item.key === null && (item.value === "server" || item.value === "nowait")) {
      switches.add(item.value);
    } else if (item.key === "rate-limit" && /^[0-9]+$/.test(item.value)) {
      rateLimit = Number(item.value);
    } else throw bad(`unknown option '${item.key ?? item.value}'`);
  }
  if (!switches.has("server") || !switches.has("nowait")) {
    throw bad("the QMP socket must be server,nowait");
  }
  const address = head.value;
  if (address.startsWith("unix:")) {
    return checked({ flag, syntax, schema }, text, {
      kind: "unix",
      path: address.slice(5),
      rateLimit,
    });
  }
  if (address.startsWith("tcp:")) {
    const hostPort = address.slice(4);
    const colon = hostPort.lastIndexOf(":");
    const port = hostPort.slice(colon + 1);
    if (colon < 0 || !/^[0-9]+$/.test(port)) throw bad("tcp needs <host>:<port>");
    let host = hostPort.slice(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    return checked({ flag, syntax, schema }, text, {
      kind: "tcp",
      host,
      port: Number(port),
      rateLimit,
    });
  }
  throw bad("address must start with unix: or tcp:");
}

export function format(qmp: QmpEndpoint): string {
  const address =
    qmp.kind === "unix"
      ? `unix:${escapeValue(qmp.path)}`
      : `tcp:${qmp.host.includes(":") ? `[${qmp.host}]` : qmp.host}:${qmp.port}`;
  const limit = qmp.rateLimit === DEFAULT_QMP_RATE_LIMIT ? "" : `,rate-limit=${qmp.rateLimit}`;
  return `${address},server,nowait${limit}`;
}

export const qmpFlag: FlagModule<QmpEndpoint> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "QMP server socket",
};
