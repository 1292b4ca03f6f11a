// -daemonize. Node cannot fork, so the parent re-runs this same command line
// as a detached child (new session, no terminal, output to the -D log or
// /dev/null) and waits on a pipe until the child says the VM is up (QMP
// listening, pidfile written) or why it failed. Then the parent exits: 0 on
// ready, 1 with the child's reason otherwise.
import { spawn } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import type { Readable } from "node:stream";
import type { VmConfig } from "../config/vm-config";

const READY_FD_ENV = "VIRGA_VMM_READY_FD";

interface ReadyMessage {
  ready: boolean;
  error?: string;
  pty?: string | null;
}

/** In the daemon child: reports once to the waiting parent. */
export interface DaemonChannel {
  ready(pty: string | null): void;
  fail(message: string): void;
}

/** Non-null when this process is the detached child of a -daemonize parent. */
export function daemonChannel(): DaemonChannel | null {
  const value = process.env[READY_FD_ENV];
  if (value === undefined) return null;
  Reflect.deleteProperty(process.env, READY_FD_ENV);
  const fd = Number(value);
  let sent = false;
  const send = (message: ReadyMessage): void => {
    if (sent) return;
    sent = true;
    try {
      writeSync(fd, JSON.stringify(message) + "\n");
      closeSync(fd);
    } catch {
      // the parent is gone; nothing to tell
    }
  };
  return {
    ready: (pty) => {
      send({ ready: true, pty });
    },
    fail: (error) => {
      send({ ready: false, error });
    },
  };
}

/** In the parent: starts the child and waits for its report; returns the exit code. */
export async function daemonize(argv: readonly string[], config: VmConfig): Promise<number> {
  const output =
    typeof config.logFile === "string" ? openSync(config.logFile, "a", 0o640) : "ignore";
  const script = process.argv[1] ?? "";
  const child = spawn(process.execPath, [...process.execArgv, script, ...argv], {
    detached: true,
    stdio: ["ignore", output, output, "pipe"],
    env: { ...process.env, [READY_FD_ENV]: "3" },
  });
  if (typeof output === "number") closeSync(output);
  const pipe = child.stdio[3] as Readable;
  const message = await new Promise<ReadyMessage>((resolve) => {
    let text = "";
    pipe.setEncoding("utf8");
    pipe.on("data", (chunk: string) => {
      text += chunk;
    });
    pipe.on("error", () => undefined);
    pipe.on("close", () => {
      try {
        resolve(JSON.parse(text) as ReadyMessage);
      } catch {
        resolve({ ready: false, error: "the VM process exited before it was ready" });
      }
    });
  });
  pipe.destroy();
  child.unref();
  if (!message.ready) {
    process.stderr.write(`virga-vmm: error: ${message.error ?? "unknown"}\n`);
    return 1;
  }
  if (message.pty) {
    process.stderr.write(`char device redirected to ${message.pty} (label serial0)\n`);
  }
  return 0;
}
