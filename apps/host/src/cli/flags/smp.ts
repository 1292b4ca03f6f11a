// -smp [cpus=]n[,maxcpus=n][,sockets=n][,cores=n][,threads=n]
// Missing topology values are derived as QEMU does: threads and cores default
// to 1 and the rest goes to sockets; maxcpus defaults to cpus.
import { smpSchema, type Smp } from "../../config/vm-config";
import { checked, requireValue, type FlagModule } from "../flag";
import { parseItems } from "../options";
import { UsageError } from "../usage-error";

export const flag = "-smp";
export const syntax = "[cpus=]n[,maxcpus=n][,sockets=n][,cores=n][,threads=n]";
export const schema = smpSchema;

const KEYS = ["cpus", "maxcpus", "sockets", "cores", "threads"] as const;
type Key = (typeof KEYS)[number];

function isKey(key: string): key is Key {
  return (KEYS as readonly string[]).includes(key);
}

export function parse(value: string | null): Smp {
  const text = requireValue(flag, syntax, value);
  const bad = (problem: string): UsageError => UsageError.expected(flag, syntax, text, problem);
  const given: Partial<Record<Key, number>> = {};
  parseItems(text).forEach((item, index) => {
    const key = item.key ?? (index === 0 ? "cpus" : null);
    if (key === null) throw bad(`'${item.value}' needs a key`);
    if (!isKey(key)) throw bad(`unknown option '${key}'`);
    if (given[key] !== undefined) throw bad(`'${key}' given twice`);
    if (!/^[0-9]+$/.test(item.value)) throw bad(`${key} is not a number`);
    given[key] = Number(item.value);
  });
  const cpus = given.cpus ?? given.maxcpus;
  if (cpus === undefined) throw bad("no cpu count");
  const maxCpus = given.maxcpus ?? cpus;
  const threads = given.threads ?? 1;
  let cores = given.cores;
  let sockets = given.sockets;
  if (sockets === undefined) {
    cores ??= 1;
    sockets = Math.max(1, Math.floor(maxCpus / (cores * threads)));
  } else if (cores === undefined) {
    cores = Math.max(1, Math.floor(maxCpus / (sockets * threads)));
  }
  return checked({ flag, syntax, schema }, text, { cpus, maxCpus, sockets, cores, threads });
}

export function format(value: Smp): string {
  return `cpus=${value.cpus},maxcpus=${value.maxCpus},sockets=${value.sockets},cores=${value.cores},threads=${value.threads}`;
}

export const smp: FlagModule<Smp> = {
  flag,
  syntax,
  arity: "value",
  repeatable: false,
  schema,
  parse,
  format,
  help: "vCPUs and topology (default 1)",
};
