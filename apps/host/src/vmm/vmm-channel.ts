// The control plane's line to its VM process (native/src/process/
// control_plane.h documents the wire): requests with replies, notices
// without, and events from the VMM. fd 3 is the VM process's socketpair end.
import { Socket } from "node:net";
import type { VcpuState } from "./control";
import type { NativeVm } from "./machine";

export interface Hello {
  config: unknown;
  ptyPath: string | null;
  status: "prelaunch" | "paused" | "running";
}

export type VmmEvent =
  | { event: "shutdown"; guest: true; reason: "guest-shutdown" | "guest-reset" }
  | { event: "shutdown"; guest: false; reason: "host-signal" }
  | { event: "error"; message: string };

interface Reply {
  id: number;
  result?: unknown;
  error?: string;
}

export class VmmChannel implements NativeVm {
  private readonly socket: Socket;
  private buffer = "";
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >();
  private helloWaiter: ((hello: Hello) => void) | null = null;
  private helloReceived: Hello | null = null;
  private eventListener: (event: VmmEvent) => void = () => undefined;
  private closeListener: () => void = () => undefined;

  constructor(fd: number) {
    this.socket = new Socket({ fd, readable: true, writable: true });
    this.socket.setEncoding("utf8");
    this.socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      let newline;
      while ((newline = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, newline);
        this.buffer = this.buffer.slice(newline + 1);
        this.dispatch(JSON.parse(line) as Record<string, unknown>);
      }
    });
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      for (const waiter of this.waiting.values())
        waiter.reject(new Error("the VM process has gone"));
      this.waiting.clear();
      this.closeListener();
    });
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

  /** QMP quit: the VM process ends the VM and exits 0. */
  quit(): void {
    this.notice("quit");
  }
  /** The control plane cannot serve (QMP socket): the VM process exits 1 with this. */
  fail(message: string): void {
    this.notice(`fail ${message.replaceAll("\n", " ")}`);
  }

  private request(op: string): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.socket.write(`${id} ${op}\n`);
    });
  }

  private notice(line: string): void {
    this.socket.write(`${line}\n`);
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
      if (reply.error !== undefined) waiter?.reject(new Error(reply.error));
      else waiter?.resolve(reply.result);
    }
  }
}
