// Turns a QMP byte stream into JSON values. Clients may send several values
// in one write, split one across writes, and put newlines between them or
// not. A tokenizer (strings, numbers, true/false/null, punctuation) feeds a
// grammar check with a stack of open containers, so a malformed message is
// an error at the token where it goes wrong — not when its braces happen to
// balance. After an error the input is skipped up to the next `{`, which
// starts a fresh message, or the end of the line: a stray `}`, bare words
// or a message that is left open cannot swallow the commands that follow
// (QEMU's lexer resynchronises much the same way). Limits keep a bad client's cost bounded: a
// message over maxBytes or nested deeper than maxDepth is reported at once
// and the rest of it skipped.

export type StreamItem = { kind: "value"; value: unknown } | { kind: "error"; reason: string };

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024;
export const DEFAULT_MAX_DEPTH = 1024;

const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const COLON = 0x3a;
const COMMA = 0x2c;
const QUOTE = 0x22;
const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;

/** How much of a bad token an error message quotes. */
const SHOWN_TOKEN_BYTES = 32;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

type Punctuation = "{" | "}" | "[" | "]" | ":" | ",";

function punctuation(byte: number): Punctuation | undefined {
  switch (byte) {
    case OPEN_OBJECT:
      return "{";
    case CLOSE_OBJECT:
      return "}";
    case OPEN_ARRAY:
      return "[";
    case CLOSE_ARRAY:
      return "]";
    case COLON:
      return ":";
    case COMMA:
      return ",";
    default:
      return undefined;
  }
}

/** Bytes that end a bare word (number or literal) without belonging to it. */
function endsWord(byte: number): boolean {
  return isSpace(byte) || byte === QUOTE || punctuation(byte) !== undefined;
}

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

function isHex(byte: number): boolean {
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

// RFC 8259's number grammar as a DFA: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
type NumberState =
  "start" | "minus" | "zero" | "int" | "dot" | "frac" | "e" | "sign" | "exp" | "bad";

const NUMBER_ENDS: ReadonlySet<NumberState> = new Set(["zero", "int", "frac", "exp"]);

function nextNumberState(state: NumberState, byte: number): NumberState {
  const digit = isDigit(byte);
  const isE = byte === 0x65 || byte === 0x45;
  switch (state) {
    case "start":
      if (byte === 0x2d) return "minus";
      return byte === 0x30 ? "zero" : digit ? "int" : "bad";
    case "minus":
      return byte === 0x30 ? "zero" : digit ? "int" : "bad";
    case "zero":
      return byte === 0x2e ? "dot" : isE ? "e" : "bad";
    case "int":
      return digit ? "int" : byte === 0x2e ? "dot" : isE ? "e" : "bad";
    case "dot":
      return digit ? "frac" : "bad";
    case "frac":
      return digit ? "frac" : isE ? "e" : "bad";
    case "e":
      return byte === 0x2b || byte === 0x2d ? "sign" : digit ? "exp" : "bad";
    case "sign":
    case "exp":
      return digit ? "exp" : "bad";
    case "bad":
      return "bad";
  }
}

const LITERALS: ReadonlySet<string> = new Set(["true", "false", "null"]);

/** A token's text for an error message: quoted, escaped, cut short. */
function show(bytes: Buffer, truncated: boolean): string {
  const text = JSON.stringify(bytes.toString("utf8")).slice(1, -1).replace(/'/g, "\\'");
  return `'${text}${truncated ? "…" : ""}'`;
}

/** What the grammar accepts next. */
type Expect =
  | "value" // at top level, after ':' and after ',' in an array
  | "first-value" // after '[': a value or ']'
  | "first-key" // after '{': a member name or '}'
  | "key" // after ',' in an object
  | "colon"
  | "after-value"; // ',' or the close of the innermost container

const EXPECTED: Record<Exclude<Expect, "after-value">, string> = {
  value: "a value",
  "first-value": "a value or ']'",
  "first-key": "a member name (a string) or '}'",
  key: "a member name (a string)",
  colon: "':'",
};

type Token = Punctuation | "string" | "scalar";

/**
 * normal: tokens are checked against the grammar.
 * deep: inside a value nested deeper than maxDepth (already refused); only
 *   brackets outside strings are counted, to find where that value ends.
 * recover: after an error; bytes are skipped up to the next `{` or line end.
 */
type Mode = "normal" | "deep" | "recover";

type Lex = "none" | "string" | "escape" | "unicode" | "word";

export class JsonStreamSplitter {
  private mode: Mode = "normal";
  private lex: Lex = "none";
  private expect: Expect = "value";
  /** The open containers of the current message, innermost last. */
  private readonly stack: ("{" | "[")[] = [];
  /** Brackets open inside the over-deep value (deep mode). */
  private deepDepth = 0;
  private unicodeLeft = 0;
  private numberState: NumberState = "start";
  /** The current word's first bytes, for literals and error messages. */
  private word: number[] = [];
  private wordLength = 0;

  /** A message has begun and not yet ended. */
  private open = false;
  /** The current message was refused (limit or syntax): keep nothing, report nothing more. */
  private refused = false;
  private parts: Buffer[] = [];
  private size = 0;

  // The chunk being scanned, where the current message's bytes begin in it,
  // and what it has produced so far.
  private chunk: Buffer = Buffer.alloc(0);
  private start = 0;
  private out: StreamItem[] = [];

  constructor(
    private readonly maxBytes = DEFAULT_MAX_MESSAGE_BYTES,
    private readonly maxDepth = DEFAULT_MAX_DEPTH,
  ) {}

  /** Feeds bytes; returns the values (and errors) completed by them, in order. */
  push(chunk: Buffer): StreamItem[] {
    this.chunk = chunk;
    this.start = 0;
    this.out = [];
    for (let at = 0; at < chunk.length; at++) {
      let byte = chunk[at] ?? 0;
      if (this.lex === "string") {
        // Most of a string's bytes change nothing: skip to the next that does.
        while (byte !== QUOTE && byte !== BACKSLASH && byte >= 0x20 && ++at < chunk.length) {
          byte = chunk[at] ?? 0;
        }
        if (at === chunk.length) break;
      }
      this.step(byte, at);
    }
    if (this.open) this.take(chunk.length);
    const out = this.out;
    this.out = [];
    this.chunk = Buffer.alloc(0);
    return out;
  }

  private step(byte: number, at: number): void {
    switch (this.lex) {
      case "string":
        this.stringByte(byte, at);
        return;
      case "escape":
        this.escapeByte(byte);
        return;
      case "unicode":
        if (!isHex(byte)) {
          this.fail("JSON parse error: '\\u' in a string must be followed by four hex digits");
        } else if (--this.unicodeLeft === 0) {
          this.lex = "string";
        }
        return;
      case "word":
        if (!endsWord(byte)) {
          this.wordByte(byte);
          return;
        }
        this.lex = "none";
        this.endWord(at);
        break; // the byte that ended the word is a token of its own
      case "none":
        break;
    }
    if (this.mode === "recover") {
      // A `{` starts the next message; a line end lets a line-oriented
      // client (ncat) start afresh on its next line.
      if (byte === NEWLINE) this.mode = "normal";
      if (byte !== OPEN_OBJECT) return;
      this.mode = "normal";
    }
    if (isSpace(byte)) return;
    if (this.mode === "deep") {
      this.deepByte(byte, at);
      return;
    }
    const mark = punctuation(byte);
    if (mark !== undefined) {
      // A `{` the current message had no place for starts the next one.
      if (!this.token(mark, at) && mark === "{") {
        this.mode = "normal";
        this.token("{", at);
      }
      return;
    }
    this.begin(at);
    if (byte === QUOTE) {
      this.lex = "string";
      return;
    }
    this.lex = "word";
    this.numberState = "start";
    this.word = [];
    this.wordLength = 0;
    this.wordByte(byte);
  }

  private stringByte(byte: number, at: number): void {
    if (byte === QUOTE) {
      this.lex = "none";
      if (this.mode === "normal") this.token("string", at);
    } else if (byte === BACKSLASH) {
      this.lex = "escape";
    } else if (byte < 0x20) {
      // JSON strings cannot hold raw control characters; treating one as the
      // end of the message also lets a newline end a runaway string.
      this.fail(
        `JSON parse error: control character 0x${byte.toString(16).padStart(2, "0")} inside a string (escape it)`,
      );
    }
  }

  private escapeByte(byte: number): void {
    if (byte === 0x75) {
      this.lex = "unicode";
      this.unicodeLeft = 4;
    } else if ('"\\/bfnrt'.includes(String.fromCharCode(byte))) {
      this.lex = "string";
    } else {
      this.fail(
        `JSON parse error: invalid escape ${show(Buffer.from([BACKSLASH, byte]), false)} in a string`,
      );
    }
  }

  private wordByte(byte: number): void {
    this.numberState = nextNumberState(this.numberState, byte);
    if (this.wordLength < SHOWN_TOKEN_BYTES) this.word.push(byte);
    this.wordLength++;
  }

  private endWord(at: number): void {
    const text = Buffer.from(this.word);
    const isNumber = NUMBER_ENDS.has(this.numberState);
    if (!isNumber && !LITERALS.has(text.toString("latin1"))) {
      this.fail(
        `JSON parse error: invalid token ${show(text, this.wordLength > this.word.length)} (expected a string, a number, true, false or null)`,
      );
      return;
    }
    this.token("scalar", at - 1);
  }

  /** Counts brackets until the over-deep value closes, then checks the grammar again. */
  private deepByte(byte: number, at: number): void {
    if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      this.deepDepth++;
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      if (--this.deepDepth === 0) {
        this.mode = "normal";
        this.afterValue(at);
      }
    } else if (byte === QUOTE) {
      this.lex = "string";
    }
  }

  /** A string or word starts here; at top level it is a message of its own. */
  private begin(at: number): void {
    if (!this.open) this.openMessage(at);
  }

  private openMessage(at: number): void {
    this.open = true;
    this.start = at;
  }

  /** Feeds one token to the grammar; `at` is its last byte. False: refused. */
  private token(token: Token, at: number): boolean {
    const top = this.stack.at(-1);
    switch (this.expect) {
      case "value":
      case "first-value":
        if (token === "{" || token === "[") {
          if (!this.open) this.openMessage(at);
          this.enter(token);
          return true;
        }
        if (token === "string" || token === "scalar") {
          this.afterValue(at);
          return true;
        }
        if (token === "]" && this.expect === "first-value") {
          this.pop(at);
          return true;
        }
        break;
      case "first-key":
      case "key":
        if (token === "string") {
          this.expect = "colon";
          return true;
        }
        if (token === "}" && this.expect === "first-key") {
          this.pop(at);
          return true;
        }
        break;
      case "colon":
        if (token === ":") {
          this.expect = "value";
          return true;
        }
        break;
      case "after-value":
        if (token === ",") {
          this.expect = top === "{" ? "key" : "value";
          return true;
        }
        if ((token === "}" && top === "{") || (token === "]" && top === "[")) {
          this.pop(at);
          return true;
        }
        break;
    }
    this.fail(this.unexpected(token, top));
    return false;
  }

  private unexpected(token: Token, top: "{" | "[" | undefined): string {
    const got =
      token === "string"
        ? "a string"
        : token === "scalar"
          ? show(Buffer.from(this.word), this.wordLength > this.word.length)
          : `'${token}'`;
    if (top === undefined) {
      if (token === "}") return "JSON parse error: unbalanced '}' (no object is open)";
      if (token === "]") return "JSON parse error: unbalanced ']' (no array is open)";
      return `JSON parse error: unexpected ${got} outside an object`;
    }
    const expected =
      this.expect === "after-value" ? `',' or '${top === "{" ? "}" : "]"}'` : EXPECTED[this.expect];
    return `JSON parse error: expected ${expected} but got ${got}`;
  }

  private enter(open: "{" | "["): void {
    if (this.stack.length >= this.maxDepth) {
      this.refuse(`JSON nesting deeper than ${this.maxDepth}`);
      this.mode = "deep";
      this.deepDepth = 1;
      return;
    }
    this.stack.push(open);
    this.expect = open === "{" ? "first-key" : "first-value";
  }

  private pop(at: number): void {
    this.stack.pop();
    this.afterValue(at);
  }

  /** A value ended at byte `at` (-1: in the previous chunk). */
  private afterValue(at: number): void {
    if (this.stack.length > 0) {
      this.expect = "after-value";
      return;
    }
    this.take(at + 1);
    if (!this.refused) this.emitValue();
    this.reset();
  }

  private emitValue(): void {
    const text = Buffer.concat(this.parts).toString("utf8");
    try {
      this.out.push({ kind: "value", value: JSON.parse(text) as unknown });
    } catch (error) {
      // Unreachable for input the grammar accepted; kept so a scanner bug is
      // an error reply rather than a dead control plane.
      this.out.push({
        kind: "error",
        reason: `JSON parse error: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }

  /** Ends the current message with an error and skips to the next `{` or line end. */
  private fail(reason: string): void {
    this.refuse(reason);
    this.reset();
    this.mode = "recover";
  }

  /** Reports the current message's first problem; later ones are not news. */
  private refuse(reason: string): void {
    if (!this.refused) this.out.push({ kind: "error", reason });
    this.refused = true;
    this.parts = [];
    this.size = 0;
  }

  /** Keeps the current message's bytes of this chunk up to `end` (exclusive). */
  private take(end: number): void {
    if (this.refused || end <= this.start) return;
    this.size += end - this.start;
    if (this.size > this.maxBytes) {
      this.refuse(`message larger than ${this.maxBytes} bytes`);
      return;
    }
    // Copy: the caller's chunk may be reused once push returns.
    this.parts.push(Buffer.from(this.chunk.subarray(this.start, end)));
    this.start = end;
  }

  private reset(): void {
    this.mode = "normal";
    this.lex = "none";
    this.expect = "value";
    this.stack.length = 0;
    this.deepDepth = 0;
    this.open = false;
    this.refused = false;
    this.parts = [];
    this.size = 0;
  }
}
