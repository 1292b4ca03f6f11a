// Every VM's events in one numbered stream: QMP events as the VMs send them
// and virgad's own (VM_STATE, VM_CREATED, VM_DELETED). `seq` grows by one per
// event and survives virgad restarts (the recent events are kept in
// <run>/events.jsonl), so a subscriber that reconnects — even to a new
// virgad — passes the last seq it saw and gets what it missed.
//
// An event is written to the file before anyone is sent it: a virgad killed
// right after sending an event whose line was still queued would come back
// numbering from the seq before it, and its next event would reuse a seq the
// portal stored already (and skip as a duplicate).
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { Feed } from "./feed";
import { messageOf } from "./errors";

export interface VmEvent {
  seq: number;
  vmId: string;
  event: string;
  data: unknown;
  /** ISO time; QMP events keep the VMM's own timestamp. */
  timestamp: string;
}

export const EVENTS_KEPT = 1000;
const COMPACT_AFTER = 10 * EVENTS_KEPT;
export const EVENT_SUBSCRIBER_MAX_PENDING_BYTES = 1024 * 1024;

interface Subscriber {
  vmId: string | undefined;
  feed: Feed<VmEvent>;
}

export class EventBus {
  private readonly recent: VmEvent[] = [];
  private seq = 0;
  private readonly subscribers = new Set<Subscriber>();
  private appended = 0;
  private failed = false;

  constructor(
    private readonly file: string | null,
    private readonly log: (line: string) => void = () => undefined,
    private readonly maxPendingBytes = EVENT_SUBSCRIBER_MAX_PENDING_BYTES,
  ) {
    if (file === null) return;
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      text = "";
    }
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      try {
        const event = JSON.parse(line) as VmEvent;
        if (typeof event.seq === "number" && event.seq > this.seq) {
          this.recent.push(event);
          this.seq = event.seq;
        }
      } catch {
        // a torn last line from a crash: skip it
      }
    }
    this.recent.splice(0, Math.max(0, this.recent.length - EVENTS_KEPT));
    writeFileSync(file, this.serialise(), { mode: 0o600 });
  }

  get lastSeq(): number {
    return this.seq;
  }

  publish(vmId: string, event: string, data: unknown, timestamp = new Date()): VmEvent {
    const record: VmEvent = {
      seq: ++this.seq,
      vmId,
      event,
      data: data ?? {},
      timestamp: timestamp.toISOString(),
    };
    this.recent.push(record);
    if (this.recent.length > EVENTS_KEPT) this.recent.shift();
    this.persist(record);
    const size = JSON.stringify(record).length;
    for (const subscriber of this.subscribers) {
      if (subscriber.vmId !== undefined && subscriber.vmId !== vmId) continue;
      if (!subscriber.feed.push(record, size)) this.subscribers.delete(subscriber);
    }
    return record;
  }

  /** Events after `afterSeq` still kept, then live ones; only `vmId`'s when given. */
  subscribe(vmId?: string, afterSeq?: number): Feed<VmEvent> {
    const feed = new Feed<VmEvent>(this.maxPendingBytes);
    if (afterSeq !== undefined) {
      for (const event of this.recent) {
        if (event.seq <= afterSeq) continue;
        if (vmId !== undefined && event.vmId !== vmId) continue;
        feed.preload(event, JSON.stringify(event).length);
      }
    }
    const subscriber: Subscriber = { vmId, feed };
    this.subscribers.add(subscriber);
    feed.onClose(() => this.subscribers.delete(subscriber));
    return feed;
  }

  close(): void {
    for (const subscriber of this.subscribers) subscriber.feed.close();
    this.subscribers.clear();
  }

  private serialise(): string {
    return this.recent.map((event) => JSON.stringify(event) + "\n").join("");
  }

  private persist(record: VmEvent): void {
    const file = this.file;
    if (file === null) return;
    const compact = ++this.appended >= COMPACT_AFTER;
    if (compact) this.appended = 0;
    try {
      if (compact) writeFileSync(file, this.serialise(), { mode: 0o600 });
      else appendFileSync(file, JSON.stringify(record) + "\n");
    } catch (error) {
      if (!this.failed) this.log(`events file ${file}: ${messageOf(error)}`);
      this.failed = true;
    }
  }
}
