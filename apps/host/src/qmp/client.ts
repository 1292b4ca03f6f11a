// A QMP client: used by tests and benchmarks now, by the host daemon later.
// Replies are matched to requests by id; events and unmatched replies are
// kept in order for whoever waits for them.
import net from "node:net";
import type { QmpEventRecord } from "./wire";

export interface QmpReply {
  return?: unknown;
  error?: { class: string; desc: string };
  id?: unknown;
}

export type QmpMessage = Record<string, unknown>;

export class QmpReplyError extends Error {
  constructor(
    readonly errorClass: string,
    desc: string,
  ) {
    super(`${errorClass}: ${desc}`);
    this.name = "QmpReplyError";
  }
}

const MAX_KEPT = 10000;

type Waiter = { match: (m: QmpMessage) => boolean; resolve: (m: QmpMessage) => void };

export class QmpClient {
  /** Every message received, in order (greeting first). */
  readonly messages: QmpMessage[] = [];
  private readonly waiters = new Set<Waiter>();
  private buffer = "";
  private nextId = 1;
  private closedError: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (text: string) => {
      this.onData(text);
    });
    socket.on("close", () => {
      this.closedError = new Error("QMP connection closed");
    });
    socket.on("error", () => {
      // surfaced through close
    });
  }

  /** Connects to "unix:<path>", "tcp:<host>:<port>" or a bare socket path, and reads the greeting. */
  static async connect(address: string, timeoutMs = 5000): Promise<QmpClient> {
    const socket = address.startsWith("tcp:")
      ? net.connect(
          Number(address.slice(address.lastIndexOf(":") + 1)),
          address.slice(4, address.lastIndexOf(":")),
        )
      : net.connect(address.startsWith("unix:") ? address.slice(5) : address);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const client = new QmpClient(socket);
    await client.waitFor((m) => "QMP" in m, timeoutMs);
    return client;
  }

  get greeting(): QmpMessage | undefined {
    return this.messages.find((m) => "QMP" in m);
  }

  get events(): QmpEventRecord[] {
    return this.messages.filter((m) => "event" in m) as unknown as QmpEventRecord[];
  }

  /** Sends bytes as they are (for protocol tests). */
  sendRaw(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Sends a request with a fresh id and resolves with the whole reply. */
  async request(
    name: string,
    args?: Record<string, unknown>,
    timeoutMs = 10000,
  ): Promise<QmpReply> {
    const id = `c${this.nextId++}`;
    const message: Record<string, unknown> = { execute: name, id };
    if (args !== undefined) message.arguments = args;
    this.socket.write(JSON.stringify(message) + "\n");
    const reply: QmpReply = await this.waitFor((m) => m.id === id, timeoutMs);
    return reply;
  }

  /** Runs a command and returns its value; a QMP error becomes a QmpReplyError. */
  async execute(
    name: string,
    args?: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<unknown> {
    const reply = await this.request(name, args, timeoutMs);
    if (reply.error !== undefined) throw new QmpReplyError(reply.error.class, reply.error.desc);
    return reply.return;
  }

  /** Waits for a message (already received or still to come) that matches. */
  async waitFor(match: (m: QmpMessage) => boolean, timeoutMs = 10000): Promise<QmpMessage> {
    const seen = this.messages.find(match);
    if (seen !== undefined) return seen;
    if (this.closedError !== null) throw this.closedError;
    return new Promise((resolve, reject) => {
      const onClose = (): void => {
        if (this.waiters.delete(waiter)) {
          clearTimeout(timer);
          reject(new Error("QMP connection closed while waiting"));
        }
      };
      const waiter: Waiter = {
        match,
        resolve: (m) => {
          clearTimeout(timer);
          this.socket.off("close", onClose);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        this.socket.off("close", onClose);
        reject(new Error(`no matching QMP message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(waiter);
      this.socket.once("close", onClose);
    });
  }

  async waitForEvent(name: string, timeoutMs = 10000): Promise<QmpEventRecord> {
    return (await this.waitFor((m) => m.event === name, timeoutMs)) as unknown as QmpEventRecord;
  }

  /** Resolves when the server closes the connection. */
  async closed(timeoutMs = 10000): Promise<void> {
    if (this.socket.destroyed || this.closedError !== null) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`QMP connection still open after ${timeoutMs} ms`));
      }, timeoutMs);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(text: string): void {
    this.buffer += text;
    let newline = this.buffer.indexOf("\n");
    while (newline >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line !== "") this.receive(JSON.parse(line) as QmpMessage);
      newline = this.buffer.indexOf("\n");
    }
  }

  private receive(message: QmpMessage): void {
    this.messages.push(message);
    // A long-lived client (the daemon) must not grow without end.
    if (this.messages.length > MAX_KEPT) this.messages.splice(1, this.messages.length - MAX_KEPT);
    for (const waiter of this.waiters) {
      if (waiter.match(message)) {
        this.waiters.delete(waiter);
        waiter.resolve(message);
      }
    }
  }
}
