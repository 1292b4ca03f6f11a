"use client";
// The VM's serial console in xterm.js over the portal's websocket. The
// portal replays the host's scrollback to a new connection, so the boot log
// shows even when the console is opened late; after a drop the console
// reconnects with `since` = the offset just past the last byte it has, and
// gets exactly the bytes it missed (nothing twice, nothing lost).
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";

const TRANSCRIPT_CHARS = 256 * 1024;

function decodeBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function SerialConsole({ vmId, canType }: { vmId: string; canType: boolean }) {
  const container = useRef<HTMLDivElement>(null);
  const transcript = useRef<HTMLPreElement>(null);
  const socketRef = useRef<WebSocket | null>(null);
  const [status, setStatus] = useState("connecting…");

  useEffect(() => {
    let disposed = false;
    const isDisposed = () => disposed;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let next: number | null = null;
    let attempt = 0;
    let pending = "";
    let cleanup: (() => void) | null = null;
    const decoder = new TextDecoder();
    const appendTranscript = (bytes: Uint8Array) => {
      const node = transcript.current;
      if (node === null) return;
      const text = node.textContent + decoder.decode(bytes, { stream: true });
      node.textContent = text.length > TRANSCRIPT_CHARS ? text.slice(-TRANSCRIPT_CHARS) : text;
    };

    void (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([
        import("@xterm/xterm"),
        import("@xterm/addon-fit"),
      ]);
      // The effect may have been cleaned up while the modules loaded.
      if (isDisposed() || container.current === null) return;
      const term = new Terminal({
        scrollback: 100_000,
        convertEol: true,
        cursorBlink: canType,
        disableStdin: !canType,
        fontFamily: '"IBM Plex Mono", monospace',
        fontSize: 13,
        theme: { background: "#0f1419", foreground: "#d5dde8" },
      });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(container.current);
      fit.fit();
      const onResize = () => fit.fit();
      window.addEventListener("resize", onResize);

      const connect = () => {
        if (disposed) return;
        const protocol = location.protocol === "https:" ? "wss:" : "ws:";
        const query = next === null ? "" : `?since=${next}`;
        const ws = new WebSocket(
          `${protocol}//${location.host}/api/v1/vms/${encodeURIComponent(vmId)}/console${query}`,
        );
        socketRef.current = ws;
        setStatus(attempt === 0 ? "connecting…" : "reconnecting…");
        ws.onopen = () => {
          attempt = 0;
          setStatus("connected");
          if (pending !== "") {
            ws.send(JSON.stringify({ type: "input", data: pending }));
            pending = "";
          }
        };
        ws.onmessage = (message) => {
          const frame = JSON.parse(String(message.data)) as
            { type: "data"; offset: number; data: string } | { type: "error"; message: string };
          if (frame.type === "error") {
            term.write(`\r\n\x1b[31m[portal] ${frame.message}\x1b[0m\r\n`);
            return;
          }
          let bytes = decodeBase64(frame.data);
          if (next !== null && frame.offset < next) bytes = bytes.slice(next - frame.offset);
          if (bytes.length === 0) return;
          term.write(bytes);
          appendTranscript(bytes);
          next = frame.offset + decodeBase64(frame.data).length;
        };
        ws.onclose = (event) => {
          if (socketRef.current === ws) socketRef.current = null;
          if (disposed) return;
          // The portal ended it because the session ended: retrying cannot help.
          if (event.code === 4401) {
            setStatus("session ended — sign in again");
            return;
          }
          attempt++;
          setStatus("disconnected — reconnecting…");
          retry = setTimeout(connect, Math.min(250 * 2 ** attempt, 5000));
        };
      };
      // Keys typed while the socket is down are sent once it is back.
      const input = term.onData((data) => {
        if (!canType) return;
        const ws = socketRef.current;
        if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "input", data }));
        else if (pending.length < 4096) pending += data;
      });
      connect();
      cleanup = () => {
        window.removeEventListener("resize", onResize);
        input.dispose();
        term.dispose();
      };
    })();

    return () => {
      disposed = true;
      if (retry !== null) clearTimeout(retry);
      socketRef.current?.close();
      cleanup?.();
    };
  }, [vmId, canType]);

  return (
    <div>
      <div className="spread" style={{ marginBottom: 8 }}>
        <span className="muted small" data-testid="console-status">
          {status}
        </span>
        <button
          type="button"
          onClick={() => {
            setStatus("reconnecting…");
            socketRef.current?.close();
          }}
          title="Drop the connection; the console reconnects and resumes where it was"
        >
          Reconnect
        </button>
      </div>
      <div className="terminal" ref={container} data-testid="serial-console" />
      <pre ref={transcript} data-testid="console-transcript" hidden />
    </div>
  );
}
