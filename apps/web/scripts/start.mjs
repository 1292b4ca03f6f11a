// `npm start` for the portal: applies the database migrations, builds the
// pages if the build is missing or older than the sources, starts a local
// virgad (unless one already answers at VIRGA_HOST_LISTEN), then the portal
// with that virgad registered as host "local". Ctrl-C stops both; VMs keep
// running (virgad re-attaches to them on the next start) and everything is
// kept under ./data/. A virgad that ends on its own is started again; the
// portal ending stops everything.
//
//   node apps/web/scripts/start.mjs [--dev] [--no-virgad]
//
// Environment: VIRGA_DATA_DIR (./data), VIRGA_PORTAL_HOST (127.0.0.1),
// VIRGA_PORTAL_PORT (3000), VIRGA_HOST_LISTEN (127.0.0.1:7788),
// VIRGA_DATABASE_URL (file:<data>/portal.db), VIRGA_SECRET_KEY_FILE
// (<data>/secret.key) or VIRGA_SECRET_KEY, VIRGA_ADMIN_PASSWORD (first
// start only; random and printed once when unset).
/* global fetch, AbortSignal */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const webDir = dirname(dirname(fileURLToPath(import.meta.url)));
const root = resolve(webDir, "..", "..");
const dev = process.argv.includes("--dev");
const withVirgad = !process.argv.includes("--no-virgad");
const dataDir = resolve(root, process.env.VIRGA_DATA_DIR ?? "data");
const hostListen = process.env.VIRGA_HOST_LISTEN ?? "127.0.0.1:7788";
const hostUrl = `http://${hostListen}`;
// Beyond loopback virgad serves TLS only, and a host reached that way is added by hand with its pinned certificate.
if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(hostListen)) {
  console.error(
    `npm start: VIRGA_HOST_LISTEN must be a loopback address (127.x.x.x:port, localhost:port or [::1]:port), got '${hostListen}'; run virgad on its own to listen beyond loopback and add it on the Hosts page (docs/security.md)`,
  );
  process.exit(2);
}
const runDir = join(dataDir, "host");
const virgadBin = join(root, "apps", "host", "bin", "virgad.js");
const env = {
  ...process.env,
  NEXT_TELEMETRY_DISABLED: "1",
  VIRGA_DATABASE_URL: process.env.VIRGA_DATABASE_URL || `file:${join(dataDir, "portal.db")}`,
  // The key sealing the hosts' tokens lives in the data folder, never in the database.
  VIRGA_SECRET_KEY_FILE: process.env.VIRGA_SECRET_KEY_FILE || join(dataDir, "secret.key"),
};

function step(label, command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: "inherit", env, ...options });
  if (result.status !== 0) {
    console.error(`npm start: ${label} failed`);
    process.exit(result.status ?? 1);
  }
}

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function buildIsStale() {
  const buildId = join(webDir, ".next", "BUILD_ID");
  if (!existsSync(buildId)) return true;
  const built = statSync(buildId).mtimeMs;
  const sources = [join(webDir, "src"), join(root, "prisma", "generated")].filter(existsSync);
  return (
    sources.some((dir) => newestSource(dir) > built) ||
    statSync(join(webDir, "next.config.ts")).mtimeMs > built
  );
}

async function answers(url, token) {
  try {
    const response = await fetch(`${url}/trpc/host.info`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(1500),
    });
    return token ? response.ok : response.status === 401 || response.ok;
  } catch {
    return false;
  }
}

function virgadToken() {
  const result = spawnSync(process.execPath, [virgadBin, "--print-token", "--run-dir", runDir], {
    env,
    encoding: "utf8",
  });
  if (result.status !== 0) {
    console.error(`npm start: virgad --print-token failed: ${result.stderr}`);
    process.exit(1);
  }
  return result.stdout.trim();
}

const children = new Set();
let stopping = false;
function stopAll(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => process.exit(code), 5000).unref();
  const wait = () => (children.size === 0 ? process.exit(code) : setTimeout(wait, 100));
  wait();
}
function track(child, name) {
  children.add(child);
  child.on("exit", (code, signal) => {
    children.delete(child);
    if (!stopping) {
      console.error(`npm start: ${name} exited (${signal ?? code}); stopping`);
      stopAll(code ?? 1);
    }
  });
  return child;
}

// virgad ending after it came up (killed, crashed) does not end the portal:
// the portal shows its VMs as stale meanwhile, and virgad is started again
// (its VMs kept running, and it resumes its event sequence). A virgad that
// keeps failing soon after each start is started less and less often.
let virgadCameUp = false;
let quickFailures = 0;
const VIRGAD_STEADY_MS = 60_000;
function superviseVirgad() {
  const startedAt = Date.now();
  const child = spawn(process.execPath, [virgadBin, "--listen", hostListen, "--run-dir", runDir], {
    stdio: ["ignore", "inherit", "inherit"],
    env,
  });
  children.add(child);
  child.on("exit", (code, signal) => {
    children.delete(child);
    if (stopping) return;
    if (!virgadCameUp) {
      console.error(`npm start: virgad exited (${signal ?? code}); stopping`);
      stopAll(code ?? 1);
      return;
    }
    quickFailures = Date.now() - startedAt > VIRGAD_STEADY_MS ? 0 : quickFailures + 1;
    const delay = Math.min(1000 * 2 ** quickFailures, 30_000);
    console.error(
      `npm start: virgad exited (${signal ?? code}); the portal keeps running; starting virgad again in ${delay / 1000} s`,
    );
    setTimeout(() => {
      if (!stopping) superviseVirgad();
    }, delay);
  });
  return child;
}
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

mkdirSync(dataDir, { recursive: true });
step("database migration", process.execPath, [join(root, "prisma", "scripts", "migrate.mjs")]);
if (!dev && buildIsStale()) {
  console.log("npm start: building the portal's pages…");
  step("next build", process.execPath, [join(webDir, "scripts", "build.mjs")]);
}

let token = null;
if (withVirgad) {
  token = virgadToken();
  if (await answers(hostUrl, token)) {
    console.log(`npm start: using the virgad already running at ${hostUrl}`);
  } else if (await answers(hostUrl, null)) {
    console.error(
      `npm start: something at ${hostUrl} refuses this run directory's token (${runDir})`,
    );
    process.exit(1);
  } else {
    const virgad = superviseVirgad();
    const deadline = Date.now() + 20_000;
    while (!(await answers(hostUrl, token))) {
      if (virgad.exitCode !== null || Date.now() > deadline) {
        console.error(`npm start: virgad did not come up at ${hostUrl}`);
        stopAll(1);
        await new Promise(() => undefined);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    virgadCameUp = true;
  }
}

track(
  spawn(
    process.execPath,
    ["--import", "tsx", join(webDir, "server.ts"), ...(dev ? ["--dev"] : [])],
    {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
      env: {
        ...env,
        NODE_ENV: dev ? "development" : "production",
        TSX_TSCONFIG_PATH: join(webDir, "tsconfig.json"),
        ...(token === null ? {} : { VIRGA_LOCAL_HOST_URL: hostUrl, VIRGA_LOCAL_HOST_TOKEN: token }),
      },
    },
  ),
  "portal",
);
