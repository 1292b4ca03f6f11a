// The control plane's line to its VM process (native/src/process/
// control_plane.h documents the wire): JSON requests with replies, notices
// without, and events from the VMM. The bytes come and go through a
// channel-link.ts link (a companion's fd 3, or a connection to the
// control-plane host), since a request may carry a descriptor (a tap from
// getfd), which Node's sockets cannot send.
import { QmpError, type QmpErrorClass } from "../qmp/wire";
import type { VcpuState } from "./control";
import type {
  BalloonInfo,
  BlockdevAddArgs,
  DeviceAddArgs,
  DevicesInfo,
  Q35DevicesInfo,
  NetdevAddArgs,
  SnapshotResult,
} from "./device-types";
import type { NativeVm } from "./machine";
import type { MigrationInfo } from "./migration";

export interface Hello {
  config: unknown;
  ptyPath: string | null;
  status: "prelaunch" | "paused" | "running" | "inmigrate";
  /** The VM process (for log lines; the control plane may be another process). */
  pid: number;
}

export type VmmEvent =
  | { event: "shutdown"; guest: true; reason: "guest-shutdown" | "guest-reset" }
  | { event: "shutdown"; guest: false; reason: "host-signal" | "migration" }
  /** A live migration's status changed (docs/migration.md). */
  | {
      event: "migration";
      status: string;
      error?: string;
      /** The destination's side: `resumed` when the guest runs now. */
      incoming?: boolean;
      resumed?: boolean;
    }
  | { event: "error"; message: string }
  /** A QMP event raised by a device (BALLOON_CHANGED), passed on as it is. */
  | { event: "qmp"; name: string; data: Record<string, unknown> }
  /** Stop serving, the VM goes on: it moves to the control-plane host. */
  | { event: "detach" };

interface Reply {
  id: number;
  result?: unknown;
  error?: string;
  class?: QmpErrorClass;
}

/** Writes one line with `fds` attached (channel-link.ts). */
export type ChannelSender = (text: string, fds: number[]) => void;

export class VmmChannel implements NativeVm {
  private buffer = "";
  private closed = false;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >();
  private helloWaiter: ((hello: Hello) => void) | null = null;
  private helloReceived: Hello | null = null;
  private eventListener: (event: VmmEvent) => void = () => undefined;
  private closeListener: () => void = () => undefined;

  constructor(private readonly send: ChannelSender) {}

  /** Text from the VM process as it arrives. Throws on a line that is not JSON. */
  receive(chunk: string): void {
    this.buffer += chunk;
    let newline;
    while ((newline = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      this.dispatch(JSON.parse(line) as Record<string, unknown>);
    }
  }

  /** The channel has closed: pending requests fail, the close listener runs once. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiting.values()) waiter.reject(new Error("the VM process has gone"));
    this.waiting.clear();
    this.closeListener();
  }

  /** The first message: the VM's configuration and serial pty. */
  hello(): Promise<Hello> {
    const received = this.helloReceived;
    if (received !== null) return Promise.resolve(received);
    return new Promise((resolve) => {
      this.helloWaiter = resolve;
    });
  }

  onEvent(listener: (event: VmmEvent) => void): void {
    this.eventListener = listener;
  }

  /** The VM process ended the channel (it exits, or it has already). */
  onClose(listener: () => void): void {
    this.closeListener = listener;
  }

  pause(): Promise<void> {
    return this.request("pause").then(() => undefined);
  }
  resume(): Promise<void> {
    return this.request("resume").then(() => undefined);
  }
  reset(): Promise<void> {
    return this.request("reset").then(() => undefined);
  }
  powerButton(): Promise<void> {
    return this.request("powerdown").then(() => undefined);
  }
  vcpus(): Promise<VcpuState[]> {
    return this.request("vcpus") as Promise<VcpuState[]>;
  }

  blockdevAdd(args: BlockdevAddArgs): Promise<void> {
    return this.request("blockdev-add", args).then(() => undefined);
  }
  blockdevDel(nodeName: string): Promise<void> {
    return this.request("blockdev-del", { nodeName }).then(() => undefined);
  }
  netdevAdd(args: NetdevAddArgs, fd?: number): Promise<void> {
    return this.request("netdev-add", args, fd === undefined ? [] : [fd]).then(() => undefined);
  }
  netdevDel(id: string): Promise<void> {
    return this.request("netdev-del", { id }).then(() => undefined);
  }
  deviceAdd(args: DeviceAddArgs): Promise<void> {
    return this.request("device-add", args).then(() => undefined);
  }
  deviceDel(id: string): Promise<void> {
    return this.request("device-del", { id }).then(() => undefined);
  }
  balloon(bytes: number): Promise<void> {
    return this.request("balloon", { bytes }).then(() => undefined);
  }
  queryBalloon(): Promise<BalloonInfo> {
    return this.request("query-balloon") as Promise<BalloonInfo>;
  }
  devices(): Promise<DevicesInfo | Q35DevicesInfo> {
    return this.request("devices") as Promise<DevicesInfo | Q35DevicesInfo>;
  }
  snapshot(dir: string): Promise<SnapshotResult> {
    return this.request("snapshot", { dir }) as Promise<SnapshotResult>;
  }
  migrate(args: { uri: string; downtimeLimitMs: number; maxBandwidth: number }): Promise<void> {
    return this.request("migrate", args).then(() => undefined);
  }
  migrateCancel(): Promise<void> {
    return this.request("migrate-cancel").then(() => undefined);
  }
  migrateInfo(): Promise<MigrationInfo> {
    return this.request("migrate-info") as Promise<MigrationInfo>;
  }

  /** QMP quit: the VM process ends the VM and exits 0. */
  quit(): void {
    this.notice({ notice: "quit" });
  }
  /** The control plane cannot serve (QMP socket): the VM process exits 1 with this. */
  fail(message: string): void {
    this.notice({ notice: "fail", message });
  }
  /** This VM's part failed in the control-plane host: the VM process starts it again. */
  restart(message: string): void {
    this.notice({ notice: "restart", message });
  }

  /** A notice to a VM process that may be gone already: its end is noticed through the channel. */
  private notice(message: object): void {
    try {
      this.write(message);
    } catch {
      // the channel's close handler follows
    }
  }

  private request(op: string, args: object = {}, fds: number[] = []): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      try {
        this.write({ id, op, args, fds: fds.length }, fds);
      } catch (error) {
        this.waiting.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  private write(message: object, fds: number[] = []): void {
    if (this.closed) throw new Error("the VM process has gone");
    this.send(`${JSON.stringify(message)}\n`, fds);
  }

  private dispatch(message: Record<string, unknown>): void {
    if ("hello" in message) {
      this.helloReceived = message.hello as Hello;
      this.helloWaiter?.(this.helloReceived);
      this.helloWaiter = null;
    } else if ("event" in message) {
      this.eventListener(message as unknown as VmmEvent);
    } else {
      const reply = message as unknown as Reply;
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      if (reply.error === undefined) waiter?.resolve(reply.result);
      else if (reply.class !== undefined) waiter?.reject(new QmpError(reply.class, reply.error));
      else waiter?.reject(new Error(reply.error));
    }
  }
}
