// The last `capacity` bytes of a byte stream, addressed by absolute offset
// (bytes since the stream began), so a reader can say "from offset N".
export class Scrollback {
  private chunks: Buffer[] = [];
  private kept = 0;
  /** Absolute offset of the oldest byte kept. */
  private first = 0;

  constructor(readonly capacity: number) {}

  get start(): number {
    return this.first;
  }

  /** Absolute offset just past the newest byte. */
  get end(): number {
    return this.first + this.kept;
  }

  /** Starts over at `base` with `data` (its tail if longer than capacity). */
  reset(base: number, data: Buffer): void {
    const tail = data.length > this.capacity ? data.subarray(data.length - this.capacity) : data;
    this.chunks = tail.length > 0 ? [Buffer.from(tail)] : [];
    this.kept = tail.length;
    this.first = base + (data.length - tail.length);
  }

  append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.kept += chunk.length;
    let excess = this.kept - this.capacity;
    while (excess > 0) {
      const head = this.chunks[0];
      if (head === undefined) break;
      if (head.length <= excess) {
        this.chunks.shift();
        this.kept -= head.length;
        this.first += head.length;
        excess -= head.length;
      } else {
        this.chunks[0] = head.subarray(excess);
        this.kept -= excess;
        this.first += excess;
        excess = 0;
      }
    }
  }

  /** The bytes from `from` (clamped to what is kept) to the end, and where they start. */
  readFrom(from: number): { offset: number; data: Buffer } {
    const offset = Math.min(Math.max(from, this.first), this.end);
    const all = Buffer.concat(this.chunks, this.kept);
    return { offset, data: all.subarray(offset - this.first) };
  }

  /** The last `count` complete or partial lines, without their line ends. */
  lastLines(count: number): string[] {
    const text = Buffer.concat(this.chunks, this.kept).toString("utf8");
    const lines = text.split(/\r?\n/);
    if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines.slice(-count);
  }
}
