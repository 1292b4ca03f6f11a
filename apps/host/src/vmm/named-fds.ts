// File descriptors a QMP client handed over with getfd, by name, until a
// command consumes them (netdev_add fd=<name>) or closefd closes them.
import { closeSync } from "node:fs";

export class NamedFds {
  private readonly fds = new Map<string, number>();

  /** Stores fd under name; a previous fd of that name is closed, as QEMU does. */
  put(name: string, fd: number): void {
    const old = this.fds.get(name);
    if (old !== undefined) closeQuietly(old);
    this.fds.set(name, fd);
  }

  has(name: string): boolean {
    return this.fds.has(name);
  }

  /** Removes and returns the fd (the caller owns it now). */
  take(name: string): number | undefined {
    const fd = this.fds.get(name);
    this.fds.delete(name);
    return fd;
  }

  /** Closes the named fd; false when there is none. */
  close(name: string): boolean {
    const fd = this.take(name);
    if (fd === undefined) return false;
    closeQuietly(fd);
    return true;
  }

  names(): string[] {
    return [...this.fds.keys()];
  }

  closeAll(): void {
    for (const name of this.names()) this.close(name);
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
