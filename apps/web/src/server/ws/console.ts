// The serial console over a websocket: /api/v1/vms/{id}/console[?since=N].
// The portal checks the caller (session cookie from this origin, or an API
// token in Authorization or ?token=), then relays virgad's vm.console
// subscription. virgad replays its scrollback to a new subscriber, so a
// console opened late still shows the boot log; a client that reconnects
// passes `since` (the offset just past the last byte it has) and gets exactly
// what it missed.
//
// Frames, JSON text:
//   server → client  {"type":"data","offset":N,"data":"<base64>"}
//                    {"type":"error","message":"..."}   (then close)
//   client → server  {"type":"input","data":"<utf8 text>"}   (operators)
import type { RawData, WebSocket } from "ws";
import { audit } from "../audit";
import { followPrincipal, type Principal } from "../auth/principal";
import { hasRole } from "../auth/roles";
import { messageFor } from "../hosts/unreachable";
import { hostError, virgad, virgadStream } from "../hosts/virgad";
import { findVm } from "../vms/lookup";

const MAX_BUFFERED = 8 * 1024 * 1024;
/** Typed input waiting for virgad beyond this is dropped (a paste flood). */
const MAX_PENDING_INPUT = 1024 * 1024;

interface ClientMessage {
  type?: unknown;
  data?: unknown;
}

function send(ws: WebSocket, message: unknown): void {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
}

export async function serveConsole(
  ws: WebSocket,
  vmId: string,
  since: number | null,
  principal: Principal,
  ip: string | null,
): Promise<void> {
  // A client may type as soon as the socket opens, before the VM is looked
  // up (a few database round trips on PostgreSQL): hold what it sends.
  const early: RawData[] = [];
  const hold = (raw: RawData): void => {
    early.push(raw);
  };
  ws.on("message", hold);
  let vm;
  try {
    vm = await findVm(vmId);
  } catch (error) {
    send(ws, { type: "error", message: error instanceof Error ? error.message : String(error) });
    ws.close(4404, "no such VM");
    return;
  }
  const host = vm.host;
  let canType = hasRole(principal.role, "operator");
  await audit({
    principal,
    action: "console.attach",
    target: vm.id,
    input: since === null ? undefined : { since },
    via: "console",
    ip,
    ok: true,
  });

  const subscription = virgadStream(host).vm.console.subscribe(
    { id: vm.hostVmId, lastEventId: since === null ? undefined : String(since) },
    {
      onData: (envelope) => {
        if (ws.bufferedAmount > MAX_BUFFERED) {
          ws.close(4008, "client too slow");
          return;
        }
        send(ws, { type: "data", offset: envelope.data.offset, data: envelope.data.data });
      },
      onError: (error) => {
        send(ws, {
          type: "error",
          message: messageFor(hostError(error, host.name), principal.role),
        });
        ws.close(1011, "console stream ended");
      },
      onComplete: () => {
        ws.close(1000, "console ended");
      },
    },
  );

  // The console outlives the request that opened it: a signed-out session,
  // a revoked token or a demoted user loses it (or its keyboard) soon after.
  const stopFollowing = followPrincipal(principal, (now) => {
    if (now === null) {
      send(ws, { type: "error", message: "your session ended; sign in again" });
      ws.close(4401, "session ended");
      return;
    }
    canType = hasRole(now.role, "operator");
  });

  let pendingInput = "";
  let sendingInput = false;
  const sendInput = async (): Promise<void> => {
    if (sendingInput) return;
    sendingInput = true;
    try {
      while (pendingInput !== "") {
        const data = pendingInput.slice(0, 64 * 1024);
        pendingInput = pendingInput.slice(data.length);
        try {
          await virgad(host).vm.consoleInput.mutate({ id: vm.hostVmId, data });
        } catch (error: unknown) {
          send(ws, {
            type: "error",
            message: messageFor(hostError(error, host.name), principal.role),
          });
        }
      }
    } finally {
      sendingInput = false;
    }
  };

  const onMessage = (raw: RawData): void => {
    let message: ClientMessage;
    try {
      message = JSON.parse(
        Buffer.isBuffer(raw)
          ? raw.toString("utf8")
          : Buffer.concat(raw instanceof ArrayBuffer ? [Buffer.from(raw)] : raw).toString("utf8"),
      ) as ClientMessage;
    } catch {
      return;
    }
    if (message.type !== "input" || typeof message.data !== "string" || message.data === "") return;
    if (!canType) {
      send(ws, { type: "error", message: "typing needs the operator role" });
      return;
    }
    // Keystrokes must reach the guest in the order typed: one request to
    // virgad at a time, with whatever was typed meanwhile sent as one chunk.
    if (pendingInput.length + message.data.length > MAX_PENDING_INPUT) return;
    pendingInput += message.data;
    void sendInput();
  };
  ws.off("message", hold);
  ws.on("message", onMessage);
  for (const raw of early) onMessage(raw);
  ws.on("close", () => {
    stopFollowing();
    subscription.unsubscribe();
  });
  // Closed while the VM was looked up: no close event will come.
  if (ws.readyState !== ws.OPEN) subscription.unsubscribe();
}
