// Per-client command rate limit: a token bucket holding one second's worth of
// commands, refilled continuously. 0 means unlimited.

export class RateLimiter {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = perSecond;
    this.last = this.now();
  }

  /** Takes one token; false when the client is over its rate. */
  take(): boolean {
    if (this.perSecond === 0) return true;
    const now = this.now();
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    this.tokens = Math.min(this.perSecond, this.tokens + elapsed * this.perSecond);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
