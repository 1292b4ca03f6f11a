// A throwaway PostgreSQL server from Debian's packages (the `postgresql`
// package `npm install` installs): initdb into a new temporary directory,
// `postgres` on a free loopback port, trust authentication for the user
// `virga`, everything deleted by stop(). Used by the portal's tests, the
// scale-out benchmark and `npm run migrate:new`. When root, the server runs as
// the `postgres` user (PostgreSQL refuses to run as root).
import { spawn, spawnSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

const INSTALL_HINT =
  "npm install installs Debian's postgresql package when run as root; or: apt-get install postgresql";

/** The directory holding initdb and postgres: VIRGA_POSTGRES_BIN, else Debian's newest. */
export function postgresBinDir() {
  const configured = process.env.VIRGA_POSTGRES_BIN;
  const candidates = configured
    ? [configured]
    : (existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql") : [])
        .filter((version) => /^\d+$/.test(version))
        .sort((a, b) => Number(b) - Number(a))
        .map((version) => join("/usr/lib/postgresql", version, "bin"));
  const found = candidates.find(
    (dir) => existsSync(join(dir, "initdb")) && existsSync(join(dir, "postgres")),
  );
  if (found === undefined) {
    throw new Error(
      `PostgreSQL is not installed: no initdb and postgres in ${configured ?? "/usr/lib/postgresql/<version>/bin"} (${INSTALL_HINT})`,
    );
  }
  return found;
}

/** uid/gid to run the server as: ours, or the postgres user's when we are root. */
function serverUser() {
  if (process.getuid?.() !== 0) return {};
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  if (line === undefined) {
    throw new Error(
      `PostgreSQL refuses to run as root and there is no 'postgres' user (${INSTALL_HINT})`,
    );
  }
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a server. `durable: false` (the tests) turns off fsync and
 * synchronous commit, which a throwaway database does not need; the
 * benchmark keeps PostgreSQL's defaults.
 */
export async function startPostgres({ durable = false } = {}) {
  const bin = postgresBinDir();
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), "virga-postgres-"));
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
  const dataDir = join(dir, "data");
  const logFile = join(dir, "server.log");
  const cleanup = () => rmSync(dir, { recursive: true, force: true });

  const init = spawnSync(
    join(bin, "initdb"),
    ["-D", dataDir, "-U", "virga", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
    { ...user, encoding: "utf8" },
  );
  if (init.status !== 0) {
    cleanup();
    throw new Error(
      `initdb failed (exit ${init.status ?? init.signal}): ${init.stderr || init.error}`,
    );
  }

  const settings = durable
    ? []
    : ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"];
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const log = openSync(logFile, "a");
    if (user.uid !== undefined) chownSync(logFile, user.uid, user.gid);
    const server = spawn(
      join(bin, "postgres"),
      [
        "-D",
        dataDir,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "max_connections=200",
        ...settings,
      ],
      { ...user, stdio: ["ignore", log, log] },
    );
    const exited = new Promise((resolve) => server.once("exit", resolve));
    const running = () => server.exitCode === null && server.signalCode === null;
    const killOnExit = () => server.kill("SIGKILL");
    process.once("exit", killOnExit);
    const admin = `postgresql://virga@127.0.0.1:${port}/postgres`;
    const stop = async () => {
      process.off("exit", killOnExit);
      if (running()) {
        server.kill("SIGINT"); // fast shutdown
        const late = setTimeout(() => server.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(late);
      }
      cleanup();
    };
    const deadline = Date.now() + 30_000;
    while (running() && Date.now() < deadline) {
      const client = new pg.Client({ connectionString: admin });
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return {
          port,
          pid: server.pid,
          /** The URL of `database` on this server. */
          url: (database) => `postgresql://virga@127.0.0.1:${port}/${database}`,
          /** Creates an empty database; returns its URL. */
          createDatabase: async (database) => {
            const c = new pg.Client({ connectionString: admin });
            await c.connect();
            try {
              await c.query(`CREATE DATABASE "${database.replace(/"/g, "")}"`);
            } finally {
              await c.end();
            }
            return `postgresql://virga@127.0.0.1:${port}/${database}`;
          },
          log: () => readFileSync(logFile, "utf8"),
          stop,
        };
      } catch {
        await client.end().catch(() => undefined);
        await sleep(50);
      }
    }
    const text = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    if (running()) {
      await stop();
      throw new Error(`PostgreSQL did not accept connections within 30 s:\n${text}`);
    }
    process.off("exit", killOnExit);
    // Another process took the port between the probe and the bind: try another.
    if (attempt < 3 && /could not bind|Address already in use/i.test(text)) continue;
    cleanup();
    throw new Error(
      `PostgreSQL exited while starting (${server.exitCode ?? server.signalCode}):\n${text}`,
    );
  }
}
