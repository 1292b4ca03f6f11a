// The VM's QMP event stream: timestamped at emission, fanned out to every
// subscriber (each QMP client, later the daemon's event bus).
import { timestampNow, type QmpEventRecord } from "../qmp/wire";
import type { EventListener } from "./control";

export class EventHub {
  private readonly listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: string, data: Record<string, unknown> = {}): QmpEventRecord {
    const record: QmpEventRecord = { event, data, timestamp: timestampNow() };
    for (const listener of this.listeners) listener(record);
    return record;
  }
}
