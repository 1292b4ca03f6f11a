// The portal's own live stream of VM changes, fed by the host watchers and
// read by the browsers' subscriptions. Each item has a portal-wide id, and
// the last items are kept, so a browser that reconnects with the last id it
// saw gets what it missed (and a full refresh hint if it missed too much).
// Each portal process has its own hub: the ids a browser sees carry the
// hub's epoch, so a browser whose stream resumes on another portal (behind a
// load balancer) is told to refresh rather than matched against other ids.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";

export interface PortalEvent {
  id: number;
  vmId: string;
  hostId: string;
  event: string;
  data: unknown;
  timestamp: string;
  /** The VM's state after this event, when it changed or is known. */
  state: string | null;
}

const KEPT = 2000;

export class Hub {
  readonly epoch = randomBytes(6).toString("hex");
  private seq = 0;
  private readonly recent: PortalEvent[] = [];
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  publish(item: Omit<PortalEvent, "id">): PortalEvent {
    const event = { ...item, id: ++this.seq };
    this.recent.push(event);
    if (this.recent.length > KEPT) this.recent.splice(0, this.recent.length - KEPT);
    this.emitter.emit("event", event);
    return event;
  }

  /** Items after `id`, or null when some of them are no longer kept. */
  since(id: number): PortalEvent[] | null {
    if (id >= this.seq) return [];
    const first = this.recent[0];
    if (first === undefined || first.id > id + 1) return null;
    return this.recent.filter((event) => event.id > id);
  }

  /** The id a browser's stream carries for event `id`. */
  streamId(id: number): string {
    return `${this.epoch}:${id}`;
  }

  /** The event id a stream id names: null when it is not this hub's. */
  idOf(streamId: string): number | null {
    const [epoch, id] = streamId.split(":");
    return epoch === this.epoch && id !== undefined && /^\d+$/.test(id) ? Number(id) : null;
  }

  get lastId(): number {
    return this.seq;
  }

  on(listener: (event: PortalEvent) => void): () => void {
    this.emitter.on("event", listener);
    return () => this.emitter.off("event", listener);
  }
}

const store = globalThis as typeof globalThis & { __virgaHub?: Hub };

export function hub(): Hub {
  store.__virgaHub ??= new Hub();
  return store.__virgaHub;
}
