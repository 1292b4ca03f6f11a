// QMP the way a person at a shell talks to it: `ncat -U <socket>` with one
// command on stdin, and the same exchange over a socket of our own where a
// test needs to time it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import net from "node:net";

const QUERY_STATUS = '{"execute":"query-status"}\n';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** `echo '{"execute":"query-status"}' | ncat -U <socket>`: its whole output. */
export function ncatQueryStatus(socketPath: string): string {
  const result = spawnSync("ncat", ["-U", socketPath], {
    input: QUERY_STATUS,
    encoding: "utf8",
    timeout: 5000,
  });
  if (result.error !== undefined) {
    throw new Error(`ncat: ${result.error.message} (npm install provides it)`);
  }
  assert.equal(result.status, 0, `ncat exits once QMP has answered and closed: ${result.stderr}`);
  return result.stdout;
}

/** The greeting, then query-status's reply, over a socket; rejects after timeoutMs. */
export function rawQueryStatus(socketPath: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`${socketPath}: no answer within ${timeoutMs} ms (got ${JSON.stringify(text)})`),
      );
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on("data", (chunk: string) => {
      if (text === "") socket.write(QUERY_STATUS);
      text += chunk;
      if (text.includes('"return"')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
  });
}

/**
 * Retries rawQueryStatus until the VM answers "running"; resolves with the
 * ms since `since` (performance.now()), rejects once that passes limitMs.
 */
export async function untilRunningAnswers(
  socketPath: string,
  since: number,
  limitMs: number,
): Promise<number> {
  for (;;) {
    try {
      const text = await rawQueryStatus(socketPath, 1000);
      assert.match(text, /"QMP"[\s\S]*"status":"running"/);
      return performance.now() - since;
    } catch (error) {
      if (performance.now() - since > limitMs) throw error;
      await sleep(20);
    }
  }
}
