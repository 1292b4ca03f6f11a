// The state QMP's query-migrate reports, for snapshots (`migrate file:`)
// now and live migration later: QEMU's status names and statistics, and a
// MIGRATION event on every change of status.
export type MigrationStatus =
  | "none"
  | "setup"
  | "active"
  /** The final copy: the guest is paused and its state goes over. */
  | "device"
  | "completed"
  | "failed"
  | "cancelled";

export interface MigrationInfo {
  status: MigrationStatus;
  "total-time"?: number;
  "setup-time"?: number;
  downtime?: number;
  "expected-downtime"?: number;
  /** Why the last rounds stopped: the downtime limit was met, or the round limit hit. */
  "x-virga-converged-by"?: "downtime-limit" | "round-limit";
  /**
   * A live migration's time by phase (ms): the full pass, the dirty rounds,
   * then the downtime's parts: pausing the guest, its last pages, its state,
   * and the destination's confirmation.
   */
  "x-virga-phases"?: {
    bulk: number;
    rounds: number;
    pause: number;
    "last-pages": number;
    state: number;
    confirm: number;
  };
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    duplicate: number;
    normal: number;
    "dirty-pages-rate": number;
    mbps: number;
    "dirty-sync-count": number;
  };
  "error-desc"?: string;
}

const PAGE = 4096;

export class MigrationTracker {
  private info: MigrationInfo = { status: "none" };
  private startedAt = 0;
  /** A live migration's statistics come from the VM process. */
  live = false;

  constructor(private readonly emit: (status: MigrationStatus) => void) {}

  get active(): boolean {
    return (
      this.info.status === "setup" || this.info.status === "active" || this.info.status === "device"
    );
  }

  get status(): MigrationStatus {
    return this.info.status;
  }

  /** A live migration's status from the VM process (and its error, at the end). */
  changed(status: MigrationStatus, error?: string): void {
    if (status === this.info.status) return;
    this.info = { ...this.info, status };
    if (error !== undefined && error !== "") this.info["error-desc"] = error;
    this.emit(status);
  }

  /** Adds what only the control plane knows (the error) to the VM process's statistics. */
  merge(fromVm: MigrationInfo): MigrationInfo {
    const merged = { ...fromVm };
    const error = this.info["error-desc"];
    if (error !== undefined && (fromVm.status === "failed" || this.info.status === "failed")) {
      merged["error-desc"] = error;
    }
    return merged;
  }

  snapshotInfo(): MigrationInfo {
    return structuredClone(this.info);
  }

  begin(live: boolean): void {
    this.startedAt = performance.now();
    this.live = live;
    this.info = { status: "setup" };
    this.emit("setup");
  }

  running(): void {
    this.info.status = "active";
    this.emit("active");
  }

  /** A snapshot: all of RAM went to the file in one pass, the VM paused throughout. */
  completedToFile(result: { memoryBytes: number; totalBytes: number; stateBytes: number }): void {
    const ms = Math.round(performance.now() - this.startedAt);
    const zeroPages = Math.max(0, (result.totalBytes - result.memoryBytes) / PAGE);
    this.info = {
      status: "completed",
      "total-time": ms,
      downtime: ms,
      ram: {
        transferred: result.memoryBytes + result.stateBytes,
        remaining: 0,
        total: result.totalBytes,
        duplicate: zeroPages,
        normal: result.memoryBytes / PAGE,
        "dirty-pages-rate": 0,
        mbps: ms > 0 ? Math.round(((result.memoryBytes * 8) / 1e6 / (ms / 1000)) * 100) / 100 : 0,
        "dirty-sync-count": 1,
      },
    };
    this.emit("completed");
  }

  failed(why: string): void {
    this.info = {
      status: "failed",
      "total-time": Math.round(performance.now() - this.startedAt),
      "error-desc": why,
    };
    this.emit("failed");
  }
}
