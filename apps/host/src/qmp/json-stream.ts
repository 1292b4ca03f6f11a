// Splits a QMP byte stream into JSON texts without parsing them. Clients may
// send several objects in one write, split one object across writes, and put
// newlines between objects or not. The scanner only tracks what decides where
// a value ends: nesting depth, strings and their escapes. Limits keep a bad
// client's cost bounded: a value over maxBytes or nested deeper than maxDepth
// is reported at once and the rest of it skipped, so the connection stays
// usable; a byte that can never appear outside a JSON string ends the
// current value, so garbage does not swallow the commands after it.

export type StreamItem = { kind: "text"; text: string } | { kind: "error"; reason: string };

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;
export const DEFAULT_MAX_DEPTH = 1024;

const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** Bytes allowed between tokens inside a container (outside strings). */
function isStructural(byte: number): boolean {
  return (
    isSpace(byte) ||
    byte === 0x2c || // ,
    byte === 0x3a || // :
    byte === 0x2b || // +
    byte === 0x2d || // -
    byte === 0x2e || // .
    (byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a)
  );
}

type Mode = "idle" | "container" | "string" | "scalar";

export class JsonStreamSplitter {
  private mode: Mode = "idle";
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The current value is over a limit: keep scanning to its end, keep nothing. */
  private discarding = false;
  private parts: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly maxBytes = DEFAULT_MAX_MESSAGE_BYTES,
    private readonly maxDepth = DEFAULT_MAX_DEPTH,
  ) {}

  /** Feeds bytes; returns the values (and errors) completed by them, in order. */
  push(chunk: Buffer): StreamItem[] {
    const out: StreamItem[] = [];
    let start = 0; // where the current value's bytes begin within this chunk
    const take = (end: number): void => {
      if (!this.discarding && end > start) this.keep(chunk.subarray(start, end), out);
    };
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] ?? 0;
      switch (this.mode) {
        case "idle":
          if (isSpace(byte)) continue;
          start = i;
          if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
            this.mode = "container";
            this.depth = 1;
          } else if (byte === QUOTE) {
            this.mode = "string";
            this.escaped = false;
          } else {
            this.mode = "scalar";
          }
          continue;
        case "scalar":
          if (isSpace(byte) || byte === OPEN_OBJECT || byte === OPEN_ARRAY || byte === QUOTE) {
            take(i);
            this.finish(out);
            i--; // rescan this byte in idle mode
          }
          continue;
        case "string":
          if (byte < 0x20) {
            this.badByte(byte, out);
            continue;
          }
          if (this.escaped) this.escaped = false;
          else if (byte === BACKSLASH) this.escaped = true;
          else if (byte === QUOTE) {
            take(i + 1);
            this.finish(out);
          }
          continue;
        case "container":
          if (this.inString) {
            // Raw control characters are invalid in JSON strings: treating
            // them as errors lets a newline end a runaway string.
            if (byte < 0x20) this.badByte(byte, out);
            else if (this.escaped) this.escaped = false;
            else if (byte === BACKSLASH) this.escaped = true;
            else if (byte === QUOTE) this.inString = false;
            continue;
          }
          if (byte === QUOTE) {
            this.inString = true;
          } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
            this.depth++;
            if (this.depth > this.maxDepth && !this.discarding) {
              out.push({ kind: "error", reason: `JSON nesting deeper than ${this.maxDepth}` });
              this.discard();
            }
          } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
            this.depth--;
            if (this.depth === 0) {
              take(i + 1);
              this.finish(out);
            }
          } else if (!isStructural(byte)) {
            this.badByte(byte, out);
          }
          continue;
      }
    }
    if (this.mode !== "idle") take(chunk.length);
    return out;
  }

  /** Ends the current value at a byte that JSON does not allow there. */
  private badByte(byte: number, out: StreamItem[]): void {
    out.push({
      kind: "error",
      reason: `invalid JSON: unexpected byte 0x${byte.toString(16).padStart(2, "0")}`,
    });
    this.reset();
  }

  private keep(bytes: Buffer, out: StreamItem[]): void {
    this.size += bytes.length;
    if (this.size > this.maxBytes) {
      out.push({ kind: "error", reason: `message larger than ${this.maxBytes} bytes` });
      this.discard();
      return;
    }
    // Copy: the caller's chunk may be reused once push returns.
    this.parts.push(Buffer.from(bytes));
  }

  private discard(): void {
    this.discarding = true;
    this.parts = [];
    this.size = 0;
  }

  private finish(out: StreamItem[]): void {
    if (!this.discarding) {
      out.push({ kind: "text", text: Buffer.concat(this.parts).toString("utf8") });
    }
    this.reset();
  }

  private reset(): void {
    this.mode = "idle";
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.discarding = false;
    this.parts = [];
    this.size = 0;
  }
}
