// The control-plane host: one Node process that serves the control planes of
// many VMs (virgad runs one per run directory), so a managed VM does not cost
// a Node process of its own (docs/architecture.md, "Processes").
//
// It listens on a unix socket (0600). A VM process connects when its first
// QMP client does and sends its hello with its QMP listening socket attached
// (SCM_RIGHTS); that connection is then the VM's channel, and the host runs
// for it exactly what a companion runs (control-plane.ts, serveVm). A
// connection whose first line is {"watch":true} is virgad watching for the
// host's end; nothing is said on it.
//
// A VM's failure ends that VM's part only: its channel closing, a line that
// is not JSON, and any exception thrown while running its code (found by the
// VM's async context in the process-wide handlers the entry installs; see
// handleUncaught) end its QMP server and channel, and the VM process starts
// the control plane again.
import { AsyncLocalStorage } from "node:async_hooks";
import { chmodSync } from "node:fs";
import net from "node:net";
import { FdPassingSocket, socketFd } from "../qmp/fd-passing-socket";
import { clearStaleSocket, type QmpServerOptions } from "../qmp/server";
import { channelSender, type SendWithFds } from "./channel-link";
import { serveVm, type ServedVm } from "./control-plane";
import { closeQuietly } from "./named-fds";
import { VmmChannel } from "./vmm-channel";

export interface ControlHostOptions {
  socketPath: string;
  socketReader: NonNullable<QmpServerOptions["socketReader"]>;
  sendWithFds: SendWithFds;
  log: (line: string) => void;
}

/** A first line longer than this is not a hello: the connection is dropped. */
const MAX_FIRST_LINE = 1024 * 1024;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** One connection to the host: a VM, once its hello has come, or a watcher. */
class HostConnection {
  private readonly receivedFds: number[] = [];
  private firstLine = "";
  private channel: VmmChannel | null = null;
  private watcher = false;
  private served: ServedVm | null = null;
  private failed = false;
  private stream: FdPassingSocket | null = null;

  constructor(
    private readonly socket: net.Socket,
    private readonly host: ControlHost,
    private readonly options: ControlHostOptions,
  ) {}

  /** Reads the connection natively (descriptors survive); in the connection's async context. */
  start(): void {
    const stream = new FdPassingSocket(this.socket, this.options.socketReader);
    this.stream = stream;
    stream.setEncoding("utf8");
    stream.on("fds", (fds: number[]) => {
      this.receivedFds.push(...fds);
    });
    stream.on("data", (chunk: string) => {
      try {
        this.onData(chunk);
      } catch (error) {
        this.fail(error);
      }
    });
    stream.on("end", () => {
      stream.destroy();
    });
    stream.on("error", () => undefined);
    stream.on("close", () => {
      this.receivedFds.splice(0).forEach(closeQuietly);
      this.channel?.end();
      this.host.forget(this);
    });
  }

  get label(): string {
    return this.served?.label ?? "a VM process";
  }

  /** Ends this connection's VM part after an error in its code. */
  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.options.log(`${this.label}: control plane failed: ${messageOf(error)}`);
    if (this.served !== null) {
      this.served.fail(error);
    } else {
      this.channel?.restart(messageOf(error));
      this.stream?.destroy();
    }
  }

  private onData(chunk: string): void {
    if (this.watcher) return;
    if (this.channel !== null) {
      this.channel.receive(chunk);
      return;
    }
    this.firstLine += chunk;
    const newline = this.firstLine.indexOf("\n");
    if (newline < 0) {
      if (this.firstLine.length > MAX_FIRST_LINE) throw new Error("no hello in the first 1 MiB");
      return;
    }
    const first = JSON.parse(this.firstLine.slice(0, newline)) as Record<string, unknown>;
    if (first.watch === true) {
      // A watcher says nothing more; it only sees this connection close.
      this.firstLine = "";
      this.watcher = true;
      return;
    }
    if (!("hello" in first)) throw new Error("the first line on the host socket is not a hello");
    const fd = socketFd(this.socket);
    if (fd === null) throw new Error("the VM's connection has no descriptor");
    const listeningFd = this.receivedFds.shift();
    if (listeningFd === undefined)
      throw new Error("the hello came without the QMP listening socket");
    // The VM process sends descriptors only with the hello.
    this.receivedFds.splice(0).forEach(closeQuietly);
    this.stream?.removeAllListeners("fds");
    const channel = new VmmChannel(channelSender(this.socket, fd, this.options.sendWithFds));
    this.channel = channel;
    const text = this.firstLine;
    this.firstLine = "";
    channel.receive(text);
    void this.serve(channel, listeningFd);
  }

  private async serve(channel: VmmChannel, listeningFd: number): Promise<void> {
    try {
      const hello = await channel.hello();
      this.served = await serveVm(channel, hello, listeningFd, {
        socketReader: this.options.socketReader,
        onEnd: () => {
          this.stream?.destroy();
        },
      });
    } catch (error) {
      closeQuietly(listeningFd);
      this.fail(error);
      return;
    }
    this.options.log(`${this.served.label}: serving its QMP`);
    await this.served.ended;
    this.options.log(`${this.served.label}: its control plane has ended`);
  }
}

export class ControlHost {
  private readonly connections = new Set<HostConnection>();
  private readonly context = new AsyncLocalStorage<HostConnection>();
  private server: net.Server | null = null;

  private constructor(private readonly options: ControlHostOptions) {}

  /**
   * Listens on options.socketPath: a leftover socket file nobody answers on
   * is replaced; one that answers means a host runs already, and this throws.
   */
  static async start(options: ControlHostOptions): Promise<ControlHost> {
    const host = new ControlHost(options);
    await host.listen();
    return host;
  }

  /** VM processes (and watchers) connected now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * An exception nothing caught, or a rejection nothing handled: if it came
   * from a VM's code (its async context says which), that VM's part ends and
   * true is returned; false means it is the host's own, and the caller
   * should end the process.
   */
  handleUncaught(error: unknown): boolean {
    const connection = this.context.getStore();
    if (connection === undefined) return false;
    connection.fail(error);
    return true;
  }

  forget(connection: HostConnection): void {
    this.connections.delete(connection);
  }

  /** Stops listening and removes the socket file; VMs already served keep their part. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async listen(): Promise<void> {
    const path = this.options.socketPath;
    await clearStaleSocket(path, `a control-plane host already answers on ${path}`);
    // Paused so Node never reads (and so never drops) the hello's descriptor.
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      this.accept(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      // Created 0600 from the start: no window where others can connect.
      const mask = process.umask(0o177);
      try {
        server.listen({ path, backlog: 511 }, () => {
          resolve();
        });
      } finally {
        process.umask(mask);
      }
    });
    chmodSync(path, 0o600);
    server.on("error", (error) => {
      this.options.log(`listening socket: ${messageOf(error)}`);
    });
    this.server = server;
  }

  private accept(socket: net.Socket): void {
    const connection = new HostConnection(socket, this, this.options);
    // Everything this connection's VM does runs in its own async context, so
    // an exception anywhere in it can be traced back to it (handleUncaught).
    this.context.run(connection, () => {
      try {
        connection.start();
      } catch (error) {
        this.options.log(`cannot read a new connection: ${messageOf(error)}`);
        socket.destroy();
        return;
      }
      this.connections.add(connection);
    });
  }
}
