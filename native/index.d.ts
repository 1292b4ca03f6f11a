// What the TypeScript control plane loads from the C++ core. The VM itself
// runs in the native virga-vmm process, which the control plane talks to
// over a socketpair (src/process/control_plane.h).

/** Reads a connected unix socket (given by fd; a duplicate is kept) with
 *  recvmsg, so descriptors sent with SCM_RIGHTS reach JS (QMP getfd).
 *  The received fds belong to the callee. */
export class SocketReader {
  constructor(fd: number, onData: (data: Buffer, fds: number[]) => void, onClose: (errno: number) => void);
  pause(): void;
  resume(): void;
  /** Stops reading; idempotent. Pending callbacks may still arrive. */
  close(): void;
}

/** Sends all of `text` on a connected unix socket with `fds` attached
 *  (SCM_RIGHTS) to its first byte; waits out a full buffer (up to 5 s).
 *  The fds stay open in this process. Throws on failure. */
export function sendWithFds(fd: number, text: string, fds: number[]): void;

/** Facts about this host's KVM; never throws (present=false with a reason). */
export function kvmInfo(): { present: boolean; reason?: string; apiVersion?: number; capabilities: Record<string, boolean> };

/** Absolute path of the built probe guest ELF (native/probe-guest/build/probe.elf). */
export const probeGuestPath: string;
