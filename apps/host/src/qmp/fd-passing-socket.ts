// A unix-socket QMP connection whose input is read natively with recvmsg,
// so file descriptors a client sends with SCM_RIGHTS (for getfd) arrive as
// 'fds' events, each just before the bytes they came with. Output still
// goes through Node's socket. Node's own reads would drop those fds.
import { Duplex } from "node:stream";
import type net from "node:net";
import type { SocketReader } from "@virga/native";
import { closeQuietly } from "../vmm/named-fds";

type SocketReaderClass = new (
  fd: number,
  onData: (data: Buffer, fds: number[]) => void,
  onClose: (errno: number) => void,
) => SocketReader;

/** The OS fd behind a connected net.Socket (libuv keeps it on its handle). */
export function socketFd(socket: net.Socket): number | null {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } })._handle;
  return typeof handle?.fd === "number" && handle.fd >= 0 ? handle.fd : null;
}

export class FdPassingSocket extends Duplex {
  private readonly reader: SocketReader;

  /** `socket` must have been accepted with pauseOnConnect so Node never reads it. */
  constructor(
    private readonly socket: net.Socket,
    Reader: SocketReaderClass,
  ) {
    super();
    const fd = socketFd(socket);
    if (fd === null) throw new Error("QMP socket has no file descriptor");
    this.reader = new Reader(
      fd,
      (data, fds) => {
        if (fds.length > 0 && (this.destroyed || !this.emit("fds", fds))) fds.forEach(closeQuietly);
        if (!this.push(data)) this.reader.pause();
      },
      () => {
        this.push(null);
      },
    );
    socket.on("drain", () => this.emit("drain"));
    socket.on("error", (error) => this.destroy(error));
    socket.on("close", () => this.destroy());
  }

  override _read(): void {
    this.reader.resume();
  }

  override _write(
    chunk: Buffer,
    encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.socket.write(chunk, encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.reader.close();
    this.socket.destroy();
    callback(error);
  }
}
