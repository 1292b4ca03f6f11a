// The run directory (0700):
//   <run>/token                 bearer token, 0600
//   <run>/events.jsonl          recent events (event-bus.ts)
//   <run>/images/               always an image directory
//   <run>/control-host.sock     the control-plane host serving the VMs' QMP
//   <run>/control-host.pid      its pid, control-host.log its output
//   <run>/vms/<id>/config.json  the VM's validated VmConfig
//   <run>/vms/<id>/meta.json    name, times, last state, exit
//   <run>/vms/<id>/pid          the virga-vmm pid while it runs
//   <run>/vms/<id>/qmp.sock     virga-vmm's QMP server
//   <run>/vms/<id>/console.sock virga-vmm's serial socket (virgad is its one client)
//   <run>/vms/<id>/log          virga-vmm's -D log, stdout and stderr
//   <run>/vms/<id>/console.<offset>.log  the console's recent bytes
//   <run>/vms/<id>/disks/       a clone's copies of its template's disks
//   <run>/templates/<name>/     snapshot templates (templates.ts)
// A VM directory is built under vms/.new-<id>-* and renamed into place, so
// a failure half-way leaves nothing that looks like a VM.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export const VM_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH = 107;

export interface VmPaths {
  dir: string;
  config: string;
  meta: string;
  pid: string;
  qmp: string;
  console: string;
  log: string;
}

/** A clone's own copies of its template's disks (clones.ts); confined like image directories. */
export function vmDisksDir(paths: VmPaths): string {
  return path.join(paths.dir, "disks");
}

export function vmPaths(dir: string): VmPaths {
  return {
    dir,
    config: path.join(dir, "config.json"),
    meta: path.join(dir, "meta.json"),
    pid: path.join(dir, "pid"),
    qmp: path.join(dir, "qmp.sock"),
    console: path.join(dir, "console.sock"),
    log: path.join(dir, "log"),
  };
}

/** mkdir -p with mode 0700 on the leaf, whatever the umask or an earlier mode. */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export class RunDir {
  readonly root: string;
  readonly vmsDir: string;
  readonly imagesDir: string;
  readonly templatesDir: string;
  readonly tokenFile: string;
  readonly eventsFile: string;
  readonly controlHostSocket: string;
  readonly controlHostPid: string;
  readonly controlHostLog: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.vmsDir = path.join(this.root, "vms");
    this.imagesDir = path.join(this.root, "images");
    this.templatesDir = path.join(this.root, "templates");
    this.tokenFile = path.join(this.root, "token");
    this.eventsFile = path.join(this.root, "events.jsonl");
    this.controlHostSocket = path.join(this.root, "control-host.sock");
    this.controlHostPid = path.join(this.root, "control-host.pid");
    this.controlHostLog = path.join(this.root, "control-host.log");
  }

  /** Creates the layout (0700) and removes VM directories left half-built by a crash. */
  prepare(): void {
    privateDir(this.root);
    privateDir(this.vmsDir);
    privateDir(this.imagesDir);
    for (const name of readdirSync(this.vmsDir)) {
      if (name.startsWith(".new-"))
        rmSync(path.join(this.vmsDir, name), { recursive: true, force: true });
    }
  }

  /** The bearer token: read, or generated (32 random bytes, hex) and stored 0600. */
  token(): string {
    try {
      const existing = readFileSync(this.tokenFile, "utf8").trim();
      if (/^[0-9a-f]{64}$/.test(existing)) {
        chmodSync(this.tokenFile, 0o600);
        return existing;
      }
    } catch {
      // first start
    }
    const token = randomBytes(32).toString("hex");
    writeFileSync(this.tokenFile, token + "\n", { mode: 0o600 });
    chmodSync(this.tokenFile, 0o600);
    return token;
  }

  vm(id: string): VmPaths {
    return vmPaths(path.join(this.vmsDir, id));
  }

  /** A fresh staging directory for a VM being created. */
  staging(id: string): string {
    return path.join(this.vmsDir, `.new-${id}-${randomBytes(4).toString("hex")}`);
  }

  vmIds(): string[] {
    return readdirSync(this.vmsDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && VM_ID.test(entry.name))
      .map((entry) => entry.name)
      .sort();
  }
}
