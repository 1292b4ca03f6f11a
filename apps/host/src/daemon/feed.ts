// A bounded, single-consumer queue between a producer that must never wait
// (the guest's console, the event bus) and one subscriber. The producer
// pushes; when the subscriber falls more than maxPendingBytes behind, the
// feed is closed with an error instead of growing or slowing the producer.
export class SubscriberTooSlowError extends Error {
  constructor(pending: number, limit: number) {
    super(`subscriber dropped: ${pending} bytes pending, over the ${limit}-byte limit`);
    this.name = "SubscriberTooSlowError";
  }
}

export class Feed<T> {
  private readonly items: { item: T; size: number }[] = [];
  private pendingBytes = 0;
  private waiter: (() => void) | null = null;
  private closed = false;
  private failure: Error | null = null;
  private readonly onCloseHandlers: (() => void)[] = [];

  constructor(readonly maxPendingBytes: number) {}

  get pending(): number {
    return this.pendingBytes;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Queues an item; returns false (and closes the feed) when the subscriber is too far behind. */
  push(item: T, size: number): boolean {
    if (this.closed) return false;
    this.items.push({ item, size });
    this.pendingBytes += size;
    if (this.pendingBytes > this.maxPendingBytes) {
      this.close(new SubscriberTooSlowError(this.pendingBytes, this.maxPendingBytes));
      return false;
    }
    this.wake();
    return true;
  }

  /** Queues without the limit check: a new subscriber's backlog (scrollback, missed events). */
  preload(item: T, size: number): void {
    if (this.closed) return;
    this.items.push({ item, size });
    this.pendingBytes += size;
    this.wake();
  }

  /** Ends the feed: the consumer gets what is queued (unless failing), then the end or the error. */
  close(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (error !== undefined) {
      this.failure = error;
      this.items.length = 0;
      this.pendingBytes = 0;
    }
    this.wake();
    for (const handler of this.onCloseHandlers.splice(0)) handler();
  }

  onClose(handler: () => void): void {
    if (this.closed) handler();
    else this.onCloseHandlers.push(handler);
  }

  /** The next item, or null once closed and drained; throws the close error. */
  async next(): Promise<T | null> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const head = this.items.shift();
      if (head !== undefined) {
        this.pendingBytes -= head.size;
        return head.item;
      }
      if (this.closed) return null;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}
