// One connected QMP client: greeting, stream splitting, rate limit, ordered
// execution, replies. Commands from one client run one at a time in order;
// a client that stops reading has its input paused until its output drains,
// and one that sends faster than its commands run has it paused until they
// catch up, so a flood costs the VMM bounded memory. A session yields the
// event loop every few commands: in the control-plane host one loop serves
// many VMs, and a client flooding one of them must not hold up the others.
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
/** Commands waiting beyond this pause reading from the client; below QUEUE_LOW it resumes. */
const QUEUE_HIGH = 256;
const QUEUE_LOW = 64;
/** Commands run back to back before the session lets the event loop turn. */
const BATCH = 32;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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
  private outputBlocked = false;
  private inputPaused = false;
  private inputEnded = false;
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
      this.outputBlocked = false;
      this.updateInput();
    });
    // The client has sent all it will (EOF): once its commands have been
    // answered the connection ends, as QEMU's does, so `printf ... | ncat -U`
    // returns and a vanished client does not linger until the next event.
    stream.on("end", () => {
      this.inputEnded = true;
      if (!this.running) this.end();
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
    if (!ok && this.stream.writableLength > HIGH_WATER) {
      this.outputBlocked = true;
      this.updateInput();
    }
  }

  /** Reads from the client only while its output drains and its commands keep up. */
  private updateInput(): void {
    const limit = this.inputPaused ? QUEUE_LOW : QUEUE_HIGH;
    const pause = this.outputBlocked || this.queue.length >= limit;
    if (pause === this.inputPaused || this.closed) return;
    this.inputPaused = pause;
    if (pause) this.stream.pause();
    else this.stream.resume();
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
    if (this.queue.length >= QUEUE_HIGH) this.updateInput();
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      let count = 0;
      for (let work = this.queue.shift(); work !== undefined; work = this.queue.shift()) {
        if (work.kind === "line") this.write(work.line);
        else await this.run(work.request);
        if (++count % BATCH === 0) {
          await nextTurn();
          if (this.inputPaused) this.updateInput();
        }
      }
    } finally {
      this.running = false;
    }
    if (this.inputEnded) this.end();
    else if (this.inputPaused) this.updateInput();
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
