// How a VmmChannel's lines travel to and from the VM process: a companion's
// fd 3 (a socketpair end) or a connection to the control-plane host. Lines go
// out through Node's socket, which buffers and never blocks the event loop
// (in the host one stuck VM process must not hold up the others); a line
// with descriptors (a tap from getfd) needs sendmsg, so it waits until what
// Node queued before it has been written and then goes out whole through
// the addon's sendWithFds.
import { Socket } from "node:net";
import { VmmChannel, type ChannelSender } from "./vmm-channel";

/** The native addon's sendWithFds(fd, text, fds). */
export type SendWithFds = (fd: number, text: string, fds: number[]) => void;

export function channelSender(socket: Socket, fd: number, sendWithFds: SendWithFds): ChannelSender {
  const waiting: { text: string; fds: number[] }[] = [];
  let inFlight = 0;
  const write = (text: string, fds: number[]): void => {
    if (fds.length > 0) {
      sendWithFds(fd, text, fds);
      return;
    }
    inFlight++;
    socket.write(text, () => {
      inFlight--;
      if (inFlight === 0) flush();
    });
  };
  const flush = (): void => {
    for (let next = waiting[0]; next !== undefined; next = waiting[0]) {
      if (next.fds.length > 0 && inFlight > 0) return;
      waiting.shift();
      try {
        write(next.text, next.fds);
      } catch {
        // The channel is failing; its close rejects the request.
      }
    }
  };
  socket.on("error", () => undefined);
  return (text, fds) => {
    if (waiting.length > 0 || (fds.length > 0 && inFlight > 0)) waiting.push({ text, fds });
    else write(text, fds);
  };
}

/** A companion's channel: the socketpair end the VM process gave it as `fd`. */
export function companionChannel(fd: number, sendWithFds: SendWithFds): VmmChannel {
  const socket = new Socket({ fd, readable: true, writable: true });
  const channel = new VmmChannel(channelSender(socket, fd, sendWithFds));
  socket.setEncoding("utf8");
  // A line that is not JSON throws here and ends the companion, which the
  // VM process counts as a control plane that died.
  socket.on("data", (chunk: string) => {
    channel.receive(chunk);
  });
  socket.on("close", () => {
    channel.end();
  });
  return channel;
}
