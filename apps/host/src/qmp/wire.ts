// QMP's messages as they appear on the wire (QMP.md "Wire" and "Replies and
// errors"): one JSON object per line, terminated by \r\n.
import { VERSION } from "../version";

export type QmpErrorClass =
  "GenericError" | "CommandNotFound" | "DeviceNotActive" | "DeviceNotFound" | "OperationThrottled";

/** An error a command reports to its client; desc names the bad field and what was expected. */
export class QmpError extends Error {
  constructor(
    readonly errorClass: QmpErrorClass,
    desc: string,
  ) {
    super(desc);
    this.name = "QmpError";
  }
}

export function genericError(desc: string): QmpError {
  return new QmpError("GenericError", desc);
}

export interface Timestamp {
  seconds: number;
  microseconds: number;
}

/** Wall-clock time with microseconds, as QMP events carry it. */
export function timestampNow(): Timestamp {
  const ms = performance.timeOrigin + performance.now();
  const seconds = Math.floor(ms / 1000);
  return { seconds, microseconds: Math.floor((ms - seconds * 1000) * 1000) };
}

export interface QmpEventRecord {
  event: string;
  data: Record<string, unknown>;
  timestamp: Timestamp;
}

/** A request's id: present (any JSON value, null included) or absent. */
export type RequestId = { present: true; value: unknown } | { present: false };

export const NO_ID: RequestId = { present: false };

function withId(body: Record<string, unknown>, id: RequestId): string {
  if (id.present) body.id = id.value;
  return JSON.stringify(body) + "\r\n";
}

export function returnLine(value: unknown, id: RequestId): string {
  return withId({ return: value ?? {} }, id);
}

export function errorLine(error: QmpError, id: RequestId): string {
  return withId({ error: { class: error.errorClass, desc: error.message } }, id);
}

export function eventLine(record: QmpEventRecord): string {
  return JSON.stringify(record) + "\r\n";
}

/** The greeting's version: StratoVirt's "qemu" key (what QEMU clients parse). */
export const QMP_VERSION = {
  qemu: { micro: 1, minor: 0, major: 5 },
  package: `Virga-${VERSION}`,
} as const;

export function greetingLine(): string {
  return JSON.stringify({ QMP: { version: QMP_VERSION, capabilities: [] } }) + "\r\n";
}
