// virgad's connection to one VM's QMP socket, shared by every caller:
// requests get ids of their own ("virgad-<n>") and a timeout; replies are
// matched by id; events go to one listener (the VM, which fans them out).
// One link is one connection: when it closes, the owner decides whether to
// reconnect (the VMM still runs) or to record an exit.
import net from "node:net";
import { DaemonError } from "./errors";

export interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
}

export interface QmpEventMessage {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

/** A line longer than this ends the connection (QMP replies are small). */
const MAX_LINE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_QMP_TIMEOUT_MS = 10000;

interface Pending {
  resolve: (reply: QmpReply) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpLink {
  private buffer = "";
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  private readonly closeHandlers: (() => void)[] = [];

  private constructor(
    private readonly socket: net.Socket,
    private readonly onEvent: (event: QmpEventMessage) => void,
  ) {
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => {
      this.onData(text);
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.onClosed();
    });
  }

  /** Connects, waits for the greeting, negotiates capabilities. */
  static async connect(
    socketPath: string,
    onEvent: (event: QmpEventMessage) => void,
    timeoutMs = 5000,
  ): Promise<QmpLink> {
    const socket = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    let greeted: () => void = () => undefined;
    const greeting = new Promise<void>((resolve) => (greeted = resolve));
    const link = new QmpLink(socket, (event) => {
      onEvent(event);
    });
    link.greetingHandler = greeted;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        greeting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`no QMP greeting on ${socketPath} within ${timeoutMs} ms`));
          }, timeoutMs);
        }),
        new Promise<never>((_, reject) => {
          link.onClose(() => {
            reject(new Error(`QMP socket ${socketPath} closed before the greeting`));
          });
        }),
      ]);
      await link.request("qmp_capabilities", undefined, timeoutMs);
    } catch (error) {
      link.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return link;
  }

  private greetingHandler: (() => void) | null = null;

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(handler: () => void): void {
    if (this.closed) handler();
    else this.closeHandlers.push(handler);
  }

  /** Sends one command; resolves with the reply ({return} or {error}), without the id. */
  request(
    execute: string,
    args?: Record<string, unknown>,
    timeoutMs = DEFAULT_QMP_TIMEOUT_MS,
  ): Promise<QmpReply> {
    if (this.closed) {
      return Promise.reject(
        new DaemonError("PRECONDITION_FAILED", "the VM's QMP connection is closed"),
      );
    }
    const id = `virgad-${this.nextId++}`;
    const message: Record<string, unknown> = { execute, id };
    if (args !== undefined) message.arguments = args;
    return new Promise<QmpReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DaemonError("TIMEOUT", `QMP '${execute}' got no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.socket.write(JSON.stringify(message) + "\n");
    });
  }

  /** Runs a command and returns its value; a QMP error becomes an error naming the command. */
  async execute(
    execute: string,
    args?: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<unknown> {
    const reply = await this.request(execute, args, timeoutMs);
    if (reply.error !== undefined) {
      throw new DaemonError(
        "INTERNAL_SERVER_ERROR",
        `QMP '${execute}' failed: ${reply.error.class}: ${reply.error.desc}`,
      );
    }
    return reply.return;
  }

  close(): void {
    this.socket.destroy();
    this.onClosed();
  }

  private onData(text: string): void {
    this.buffer += text;
    if (this.buffer.length > MAX_LINE_BYTES) {
      this.close();
      return;
    }
    let newline = this.buffer.indexOf("\n");
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line !== "") this.receive(line);
      newline = this.buffer.indexOf("\n");
    }
  }

  private receive(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if ("QMP" in message) {
      this.greetingHandler?.();
      this.greetingHandler = null;
      return;
    }
    if (typeof message.event === "string") {
      this.onEvent(message as unknown as QmpEventMessage);
      return;
    }
    const id = message.id;
    if (typeof id !== "string") return;
    const waiting = this.pending.get(id);
    if (waiting === undefined) return;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    const reply: QmpReply = {};
    if ("return" in message) reply.return = message.return;
    if ("error" in message) reply.error = message.error as QmpReply["error"];
    waiting.resolve(reply);
  }

  private onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(
        new DaemonError("PRECONDITION_FAILED", `QMP connection closed (request ${id})`),
      );
    }
    this.pending.clear();
    for (const handler of this.closeHandlers.splice(0)) handler();
  }
}
