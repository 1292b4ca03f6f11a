// The QMP server of one VM: a unix socket (mode 0600, a stale file replaced,
// removed on close) or a tcp listener; any number of clients, each greeted,
// each sent every event.
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { QmpEndpoint } from "../config/vm-config";
import type { VmControl } from "../vmm/control";
import type { CommandTable } from "./dispatch";
import { FdPassingSocket } from "./fd-passing-socket";
import { QmpSession } from "./session";
import { eventLine } from "./wire";

export interface QmpServerOptions {
  endpoint: QmpEndpoint;
  vm: VmControl;
  table: CommandTable;
  log?: (line: string) => void;
  /** The native recvmsg reader; with it, unix clients can pass fds (getfd). */
  socketReader?: ConstructorParameters<typeof FdPassingSocket>[1];
  /** A socket the VM process already listens on for `endpoint` (virga-vmm's fd 4). */
  listeningFd?: number;
}

/** Is something accepting connections on the unix socket at `path`? */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => {
      resolve(false);
    });
  });
}

/** Replaces a leftover socket file; throws `inUse` if a live server still answers on it. */
export async function clearStaleSocket(
  path: string,
  inUse = `QMP socket ${path} is in use by another process`,
): Promise<void> {
  try {
    lstatSync(path);
  } catch {
    return;
  }
  if (await socketAnswers(path)) throw new Error(inUse);
  unlinkSync(path);
}

export class QmpServer {
  private readonly sessions = new Set<QmpSession>();
  private server: net.Server | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly options: QmpServerOptions) {}

  async listen(): Promise<void> {
    const { endpoint, vm, log, listeningFd } = this.options;
    if (endpoint.kind === "unix" && listeningFd === undefined)
      await clearStaleSocket(endpoint.path);
    const passFds = endpoint.kind === "unix" && this.options.socketReader !== undefined;
    // Paused so Node never reads (and so never drops) what the native reader must see.
    const server = net.createServer({ pauseOnConnect: passFds }, (socket) => {
      this.accept(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (listeningFd !== undefined) {
        server.listen({ fd: listeningFd }, () => {
          resolve();
        });
      } else if (endpoint.kind === "unix") {
        // Created 0600 from the start: no window where others can connect.
        const mask = process.umask(0o177);
        try {
          server.listen(endpoint.path, () => {
            resolve();
          });
        } finally {
          process.umask(mask);
        }
      } else {
        server.listen(endpoint.port, endpoint.host, () => {
          resolve();
        });
      }
    });
    if (endpoint.kind === "unix" && listeningFd === undefined) chmodSync(endpoint.path, 0o600);
    this.unsubscribe = vm.onEvent((record) => {
      const line = eventLine(record);
      for (const session of this.sessions) session.write(line);
    });
    log?.(`qmp: listening on ${this.address()}`);
  }

  address(): string {
    const { endpoint } = this.options;
    if (endpoint.kind === "unix") return `unix:${endpoint.path}`;
    const address = this.server?.address();
    const port = typeof address === "object" && address !== null ? address.port : endpoint.port;
    return `tcp:${endpoint.host}:${port}`;
  }

  private accept(socket: net.Socket): void {
    const { vm, table, log, endpoint, socketReader } = this.options;
    let stream: Duplex = socket;
    if (endpoint.kind === "unix" && socketReader !== undefined) {
      try {
        stream = new FdPassingSocket(socket, socketReader);
      } catch (error) {
        log?.(`qmp: cannot read client natively: ${String(error)}`);
        socket.destroy();
        return;
      }
    }
    const session = new QmpSession(stream, {
      vm,
      table,
      rateLimit: endpoint.rateLimit,
      ...(log ? { log } : {}),
    });
    this.sessions.add(session);
    log?.(`qmp: client connected (${this.sessions.size} open)`);
    stream.on("close", () => {
      this.sessions.delete(session);
      log?.(`qmp: client disconnected (${this.sessions.size} open)`);
    });
  }

  /**
   * Flushes what was written to each client, closes, removes the socket file
   * (unless keepSocketFile: the VM process goes on listening on it).
   */
  async close(options: { timeoutMs?: number; keepSocketFile?: boolean } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 500;
    this.unsubscribe?.();
    const server = this.server;
    this.server = null;
    const closing = [...this.sessions].map(async (session) => {
      session.end();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          session.close();
          resolve();
        }, timeoutMs);
      });
      await Promise.race([session.done, timeout]);
      clearTimeout(timer);
    });
    if (server !== null) {
      await Promise.all([
        ...closing,
        new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
        }),
      ]);
    }
    if (this.options.endpoint.kind === "unix" && options.keepSocketFile !== true) {
      try {
        unlinkSync(this.options.endpoint.path);
      } catch {
        // already gone
      }
    }
  }
}
