// One VM's serial console, fanned out. virga-vmm's socket backend takes one
// client; virgad is that client and relays to any number of subscribers.
// Every byte from the guest goes to the in-memory scrollback, to the
// console file and to each subscriber's bounded feed; reading never waits
// for a subscriber, so a stuck one is dropped rather than stalling the
// guest (the VMM holds its newest output while nobody reads) or the others.
import net from "node:net";
import { ConsoleFile } from "./console-file";
import { Feed } from "./feed";
import { Scrollback } from "./scrollback";

export const SCROLLBACK_BYTES = 2 * 1024 * 1024;
export const CONSOLE_FILE_MAX_BYTES = 8 * 1024 * 1024;
export const SUBSCRIBER_MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** Backlog is handed to a new subscriber in pieces of this size. */
const BACKLOG_PIECE = 64 * 1024;
/** How long close() waits for a running VMM to end the connection. */
const CLOSE_WAIT_MS = 500;

export interface ConsoleBytes {
  /** Absolute offset of data's first byte. */
  offset: number;
  data: Buffer;
}

export interface RelayOptions {
  scrollbackBytes?: number;
  fileMaxBytes?: number;
  maxPendingBytes?: number;
  log?: (line: string) => void;
}

export class ConsoleRelay {
  private readonly scrollback: Scrollback;
  private readonly file: ConsoleFile;
  private readonly feeds = new Set<Feed<ConsoleBytes>>();
  private readonly maxPending: number;
  private socket: net.Socket | null = null;
  private readonly log: (line: string) => void;

  constructor(dir: string, options: RelayOptions = {}) {
    this.log = options.log ?? (() => undefined);
    this.scrollback = new Scrollback(options.scrollbackBytes ?? SCROLLBACK_BYTES);
    this.maxPending = options.maxPendingBytes ?? SUBSCRIBER_MAX_PENDING_BYTES;
    const { file, contents } = ConsoleFile.open(dir, {
      tailBytes: this.scrollback.capacity,
      maxBytes: options.fileMaxBytes ?? CONSOLE_FILE_MAX_BYTES,
      log: this.log,
    });
    this.file = file;
    this.scrollback.reset(contents.end - contents.tail.length, contents.tail);
  }

  get connected(): boolean {
    return this.socket !== null;
  }

  /** Offset just past the newest byte: where the next output will start. */
  get end(): number {
    return this.scrollback.end;
  }

  get subscriberCount(): number {
    return this.feeds.size;
  }

  /**
   * Connects to the VMM's console socket. Resolves once connected; `onClose`
   * runs when the connection ends (the VMM exited, or refused a second client).
   */
  async connect(socketPath: string, onClose: () => void): Promise<void> {
    this.disconnect();
    const socket = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.ingest(chunk);
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      onClose();
    });
  }

  /**
   * The VMM has exited: lets the connection deliver what is still buffered
   * and end by itself (up to timeoutMs), then closes it.
   */
  async drain(timeoutMs: number): Promise<void> {
    const socket = this.socket;
    if (socket === null) return;
    if (!socket.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.socket === socket) this.disconnect();
  }

  /**
   * Leaves a running VMM without losing its output: closing outright would
   * drop what sits unread in the socket. Half-closing tells the VMM, which
   * drops this client and holds later output for the next one, then ends
   * the connection; everything it sent before that is read here first.
   */
  private async letGo(timeoutMs: number): Promise<void> {
    const socket = this.socket;
    if (socket === null) return;
    // Ours from here on: its end is no reason to call the owner's onClose.
    this.socket = null;
    if (!socket.closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.end();
      });
    }
    socket.destroy();
  }

  disconnect(): void {
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
  }

  /** Guest output (also used by tests to feed bytes without a VMM). */
  ingest(chunk: Buffer): void {
    const offset = this.scrollback.end;
    this.scrollback.append(chunk);
    this.file.append(chunk, () => this.scrollback.readFrom(this.scrollback.start));
    const bytes: ConsoleBytes = { offset, data: chunk };
    for (const feed of this.feeds) {
      if (!feed.push(bytes, chunk.length)) this.feeds.delete(feed);
    }
  }

  /** Sends bytes to the guest; false when no VMM is connected. */
  write(data: Buffer): boolean {
    if (this.socket === null) return false;
    this.socket.write(data);
    return true;
  }

  /**
   * A new subscriber: first the kept bytes from `from` (default: all the
   * scrollback), then live output. A `from` older than the scrollback starts
   * at its oldest byte; the chunk offsets show the gap.
   */
  subscribe(from?: number): Feed<ConsoleBytes> {
    const feed = new Feed<ConsoleBytes>(this.maxPending);
    const backlog = this.scrollback.readFrom(from ?? this.scrollback.start);
    for (let at = 0; at < backlog.data.length; at += BACKLOG_PIECE) {
      const data = backlog.data.subarray(at, at + BACKLOG_PIECE);
      feed.preload({ offset: backlog.offset + at, data }, data.length);
    }
    this.feeds.add(feed);
    feed.onClose(() => this.feeds.delete(feed));
    return feed;
  }

  lastLines(count: number): string[] {
    return this.scrollback.lastLines(count);
  }

  async flush(): Promise<void> {
    await this.file.flush();
  }

  /** Stops relaying (virgad is exiting, the VM keeps running); ends every subscriber. */
  async close(): Promise<void> {
    await this.letGo(CLOSE_WAIT_MS);
    for (const feed of this.feeds) feed.close();
    this.feeds.clear();
    await this.file.close();
  }

  /** The VM is being deleted: its console file goes too. */
  async remove(): Promise<void> {
    await this.close();
    await this.file.remove();
  }
}

/**
 * Resolves true once virga-vmm has accept()ed the console connection made
 * just before. connect() completes from the listen backlog, before the VMM's
 * I/O thread accepts, and output in between is dropped (nobody is attached
 * yet), so virgad must know before it lets the guest run. The VMM serves one
 * console client and closes any other at once, and accepts in backlog order:
 * a second, throw-away connection being closed proves the first was accepted.
 * False after timeoutMs (then the caller goes on regardless).
 */
export function consoleAccepted(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    let connected = false;
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(false);
    }, timeoutMs);
    probe.once("connect", () => {
      connected = true;
    });
    probe.on("data", () => undefined);
    probe.on("error", () => undefined);
    probe.once("close", () => {
      clearTimeout(timer);
      resolve(connected);
    });
  });
}
