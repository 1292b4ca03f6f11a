// One connected QMP client: greeting, stream splitting, rate limit, ordered
// execution, replies. Commands from one client run one at a time in order;
// a client that stops reading has its input paused until its output drains,
// so a flood costs the VMM bounded memory.
import type { Duplex } from "node:stream";
import type { VmControl } from "../vmm/control";
import type { CommandContext } from "./command";
import { execute, parseRequest, type CommandTable, type ParsedRequest } from "./dispatch";
import { JsonStreamSplitter } from "./json-stream";
import { closeQuietly } from "../vmm/named-fds";
import { RateLimiter } from "./rate-limit";
import { NO_ID, QmpError, errorLine, genericError, greetingLine, returnLine } from "./wire";

/** Output queued beyond this pauses reading from the client. */
const HIGH_WATER = 1024 * 1024;

export interface SessionOptions {
  table: CommandTable;
  vm: VmControl;
  rateLimit: number;
  log?: (line: string) => void;
}

type Work = { kind: "request"; request: ParsedRequest } | { kind: "line"; line: string };

export class QmpSession {
  private readonly splitter = new JsonStreamSplitter();
  private readonly limiter: RateLimiter;
  private readonly queue: Work[] = [];
  private running = false;
  private closed = false;
  private readonly commandNames: readonly string[];
  /** Descriptors received with this client's messages, oldest first. */
  private readonly receivedFds: number[] = [];
  /** Settles when the connection has closed. */
  readonly done: Promise<void>;

  constructor(
    private readonly stream: Duplex,
    private readonly options: SessionOptions,
  ) {
    this.limiter = new RateLimiter(options.rateLimit);
    this.commandNames = [...options.table.keys()];
    stream.on("fds", (fds: number[]) => {
      this.receivedFds.push(...fds);
    });
    stream.on("data", (chunk: Buffer) => {
      this.onData(chunk);
    });
    stream.on("drain", () => {
      if (!this.closed) stream.resume();
    });
    stream.on("error", () => {
      this.close();
    });
    this.done = new Promise((resolve) => {
      stream.on("close", () => {
        this.closed = true;
        this.receivedFds.splice(0).forEach(closeQuietly);
        resolve();
      });
    });
    this.write(greetingLine());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Writes an already formatted line (events from the VM). */
  write(line: string): void {
    if (this.closed || this.stream.destroyed) return;
    const ok = this.stream.write(line);
    if (!ok && this.stream.writableLength > HIGH_WATER) this.stream.pause();
  }

  /** Ends the connection once what was written has been flushed. */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.end();
  }

  close(): void {
    this.closed = true;
    this.stream.destroy();
  }

  private onData(chunk: Buffer): void {
    for (const item of this.splitter.push(chunk)) {
      if (item.kind === "error") {
        this.enqueue({ kind: "line", line: errorLine(genericError(item.reason), NO_ID) });
        continue;
      }
      const parsed = parseRequest(item.value);
      if ("error" in parsed) {
        this.enqueue({ kind: "line", line: errorLine(parsed.error, parsed.id) });
        continue;
      }
      if (!this.limiter.take()) {
        const throttled = new QmpError(
          "OperationThrottled",
          `more than ${this.options.rateLimit} commands per second from this client`,
        );
        this.enqueue({ kind: "line", line: errorLine(throttled, parsed.id) });
        continue;
      }
      this.enqueue({ kind: "request", request: parsed });
    }
  }

  private enqueue(work: Work): void {
    this.queue.push(work);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      for (let work = this.queue.shift(); work !== undefined; work = this.queue.shift()) {
        if (work.kind === "line") this.write(work.line);
        else await this.run(work.request);
      }
    } finally {
      this.running = false;
    }
  }

  private async run(request: ParsedRequest): Promise<void> {
    const after: (() => void)[] = [];
    const ctx: CommandContext = {
      vm: this.options.vm,
      afterReply: (fn) => after.push(fn),
      commandNames: this.commandNames,
      takeReceivedFd: () => this.receivedFds.shift(),
    };
    this.options.log?.(`qmp: ${request.name}`);
    let line: string;
    try {
      line = returnLine(await execute(this.options.table, request, ctx), request.id);
    } catch (error) {
      const qmpError = error instanceof QmpError ? error : genericError(String(error));
      line = errorLine(qmpError, request.id);
    }
    this.write(line);
    for (const fn of after) fn();
  }
}
