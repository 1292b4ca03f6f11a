// Whether this portal reaches each host right now, as its watcher finds out
// (the event stream's connection, the periodic vm.list). While it does not,
// the states stored for that host's VMs are only the last ones it saw: the
// pages show them as such ("host unreachable since …, state last seen …")
// rather than as live. Kept per portal process, not in the database: another
// portal sharing the database may well reach a host this one cannot.
import { hub } from "./hub";

export interface Unreachable {
  /** When this portal lost the host. */
  since: string;
  /** When the host last answered this portal (or any portal, before this one reached it). */
  lastSeenAt: string | null;
  /** Why, for the log and for admins. */
  error: string;
}

export type HostStale = Pick<Unreachable, "since" | "lastSeenAt">;

interface Host {
  id: string;
  name: string;
  lastSeenAt: Date | null;
}

export class HostHealth {
  private readonly lost = new Map<string, Unreachable>();
  private readonly seen = new Map<string, string>();

  /** The host answered (an event, a connected stream, a vm.list). */
  reached(host: Host): void {
    const now = new Date().toISOString();
    this.seen.set(host.id, now);
    const was = this.lost.get(host.id);
    if (was === undefined) return;
    this.lost.delete(host.id);
    console.log(`[watcher ${host.name}] reachable again (unreachable since ${was.since})`);
    this.announce(host.id, "HOST_REACHABLE", null);
  }

  /** The host did not answer: marked from now on (a later, closer reason replaces the first). */
  failed(host: Host, error: string): void {
    const was = this.lost.get(host.id);
    if (was !== undefined) {
      was.error = error;
      return;
    }
    const lastSeenAt = this.seen.get(host.id) ?? host.lastSeenAt?.toISOString() ?? null;
    const record = { since: new Date().toISOString(), lastSeenAt, error };
    this.lost.set(host.id, record);
    console.error(`[watcher ${host.name}] unreachable: ${error}`);
    this.announce(host.id, "HOST_UNREACHABLE", record);
  }

  /** Null while the host is reached (or not tried yet). */
  of(hostId: string): Unreachable | null {
    return this.lost.get(hostId) ?? null;
  }

  /** What every role may see of it: since when, and when its VMs' states were last seen. */
  staleness(hostId: string): HostStale | null {
    const lost = this.lost.get(hostId);
    return lost === undefined ? null : { since: lost.since, lastSeenAt: lost.lastSeenAt };
  }

  forget(hostId: string): void {
    this.lost.delete(hostId);
    this.seen.delete(hostId);
  }

  /** Browsers refresh the host's VMs: they turn stale, or live again. */
  private announce(hostId: string, event: string, data: Unreachable | null): void {
    hub().publish({
      vmId: "",
      hostId,
      event,
      data,
      timestamp: new Date().toISOString(),
      state: null,
    });
  }
}

const store = globalThis as typeof globalThis & { __virgaHostHealth?: HostHealth };

export function hostHealth(): HostHealth {
  store.__virgaHostHealth ??= new HostHealth();
  return store.__virgaHostHealth;
}
