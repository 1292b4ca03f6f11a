// Generators for property tests of QMP input: valid commands with ids
// interleaved with malformed messages of every kind the splitter must
// resynchronise after, and random read boundaries. Used by the splitter's
// and the session's tests; never by virga-vmm itself.
import assert from "node:assert/strict";
import fc from "fast-check";

export interface Limits {
  maxBytes: number;
  maxDepth: number;
}

export interface Interleaving {
  bytes: Buffer;
  /** The ids of the valid commands, in the order they were sent. */
  validIds: number[];
  /**
   * Errors owed before valid command i (index i) and after the last one
   * (the final index): by the splitter alone, and by a QMP session (which
   * also refuses well-formed values that are not commands).
   */
  required: { splitter: number[]; session: number[] };
}

type Segment =
  | { kind: "valid"; text: (id: number) => string }
  | { kind: "invalid"; what: string; text: string; splitter: number; session: number }
  /** A message left open in a place where a '{' cannot go, then a valid command. */
  | { kind: "unclosed"; prefix: string; gap: string; text: (id: number) => string };

const LITERALS = new Set(["true", "false", "null"]);

/** Words that are not JSON tokens (no delimiter inside, never a '{'). */
const badWord: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,10}$/).filter((w) => !LITERALS.has(w)),
  fc.constantFrom("01", "1.", "-", "1e", "1e+", "+1", ".5", "0x10", "--1", "1.2.3"),
  fc.constantFrom("'a'", "@", "#", "\\", "=", "nul", "True", "NULL", "NaN", "Infinity", "\x01"),
);

const words = fc.array(badWord, { minLength: 1, maxLength: 3 }).map((list) => list.join(" "));

/** Text with no '{', quote, backslash or control character. */
const plain = fc.string({
  unit: fc.constantFrom(..."abcxyz019 -_:,.}][é€".split("")),
  maxLength: 12,
});

const COMMANDS = ["query-status", "query-kvm", "query-version", "query-target"] as const;

export const validCommand: fc.Arbitrary<(id: number) => string> = fc
  .record({
    name: fc.constantFrom(...COMMANDS),
    idFirst: fc.boolean(),
    style: fc.constantFrom("compact", "spaced", "pretty"),
    emptyArguments: fc.boolean(),
  })
  .map(({ name, idFirst, style, emptyArguments }) => (id: number) => {
    const body: Record<string, unknown> = idFirst ? { id, execute: name } : { execute: name };
    if (emptyArguments) body.arguments = {};
    body.id = id;
    if (style === "compact") return JSON.stringify(body);
    if (style === "pretty") return JSON.stringify(body, null, 2);
    return JSON.stringify(body).replace(/([:,{])/g, "$1 ");
  });

function invalid(what: string, text: fc.Arbitrary<string>, splitter = 1, session = splitter) {
  return text.map((t): Segment => ({ kind: "invalid", what, text: t, splitter, session }));
}

export function invalidMessage(limits: Limits): fc.Arbitrary<Segment> {
  return fc.oneof(
    invalid("stray close", fc.constantFrom("}", "]", "}}", "] ]", "}]")),
    invalid(
      "open, then bare words",
      fc
        .tuple(
          fc.constantFrom(
            "{",
            "} {",
            '{"execute":',
            '{"execute": "stop",',
            '{"execute":"x" ',
            "[1,",
            '{"a":{"b":',
            '{"arguments":[',
          ),
          words,
        )
        .map(([open, tail]) => `${open} ${tail}`),
    ),
    invalid("bare words", words),
    invalid(
      "raw control character in a string",
      fc
        .tuple(
          fc.constantFrom('{"execute":"', '"', '{"a":["', '{"'),
          plain,
          fc.integer({ min: 0, max: 0x1f }),
          plain,
          fc.constantFrom('"}', '"', '"]}', ""),
        )
        .map(([open, before, control, after, close]) =>
          control === 0x0a
            ? `${open}${before}\n` // a runaway string ended by its line
            : `${open}${before}${String.fromCharCode(control)}${after}${close}`,
        ),
    ),
    invalid(
      "grammar",
      fc.constantFrom(
        '{"a" 1}',
        '{"a":1,}',
        "[1,2,]",
        '{"a":1]',
        "[1 2]",
        "{:}",
        '{1:"a"}',
        '{"execute" "x"}',
        '{"a"::1}',
        '{"a":1}}',
        "[]]",
        ":",
        ",",
      ),
    ),
    invalid(
      "oversized",
      fc
        .integer({ min: 1, max: 64 })
        .map(
          (extra) =>
            `{"execute":"query-status","arguments":{"pad":"${"a".repeat(limits.maxBytes + extra)}"}}`,
        ),
    ),
    invalid(
      "nested too deep",
      fc.tuple(fc.integer({ min: 1, max: 4 }), fc.boolean()).map(([extra, arrays]) => {
        const levels = limits.maxDepth + extra;
        return arrays
          ? "[".repeat(levels) + "]".repeat(levels)
          : '{"a":'.repeat(levels) + "0" + "}".repeat(levels);
      }),
    ),
    // Well-formed JSON but no command: the session refuses it, the splitter need not.
    invalid(
      "not a command",
      fc.constantFrom("42", '"str"', "[1,2]", "true", '{"a":1}', "{}"),
      0,
      1,
    ),
  );
}

const unclosed: fc.Arbitrary<Segment> = fc
  .record({
    prefix: fc.constantFrom(
      "{",
      '{"execute":"query-status"',
      '{"execute":"stop",',
      '{"execute":"x","arguments":{"a":[1,2]',
      "[1",
      '{"a":{}',
    ),
    gap: fc.constantFrom("", " ", "\n"),
    text: validCommand,
  })
  .map((r): Segment => ({ kind: "unclosed", ...r }));

function wordy(char: string | undefined): boolean {
  return char !== undefined && !/[\s{}[\]:,"]/.test(char);
}

const separator = fc.constantFrom("", " ", "\n", "\r\n", " \t\n ");

export function interleaving(limits: Limits): fc.Arbitrary<Interleaving> {
  const segment = fc.oneof(
    { arbitrary: validCommand.map((text): Segment => ({ kind: "valid", text })), weight: 3 },
    { arbitrary: invalidMessage(limits), weight: 4 },
    { arbitrary: unclosed, weight: 1 },
  );
  return fc.array(fc.tuple(separator, segment), { minLength: 1, maxLength: 12 }).map((parts) => {
    const text: string[] = [];
    const validIds: number[] = [];
    const splitter = [0];
    const session = [0];
    let invalidInGap = 0;
    const owe = (count: { splitter: number; session: number }, separatorBefore: string) => {
      // Skipping after an error runs to the next line end, so an invalid
      // message sharing a line with the one before may be skipped with it.
      if (invalidInGap > 0 && !separatorBefore.includes("\n")) return;
      const gap = splitter.length - 1;
      splitter[gap] = (splitter[gap] ?? 0) + count.splitter;
      session[gap] = (session[gap] ?? 0) + count.session;
    };
    const valid = (render: (id: number) => string) => {
      const id = validIds.length;
      text.push(render(id));
      validIds.push(id);
      splitter.push(0);
      session.push(0);
      invalidInGap = 0;
    };
    for (const [given, seg] of parts) {
      // Two words with nothing between them would be one word.
      const next = seg.kind === "invalid" ? seg.text : seg.kind === "unclosed" ? seg.prefix : "{";
      const sep = given === "" && wordy(text.at(-1)?.at(-1)) && wordy(next[0]) ? " " : given;
      text.push(sep);
      if (seg.kind === "valid") {
        valid(seg.text);
      } else if (seg.kind === "invalid") {
        text.push(seg.text);
        owe(seg, sep);
        invalidInGap++;
      } else {
        text.push(seg.prefix, seg.gap);
        owe({ splitter: 1, session: 1 }, sep);
        valid(seg.text);
      }
    }
    // A bare word at the very end is only known to be over when a delimiter follows.
    text.push("\n");
    return {
      bytes: Buffer.from(text.join("")),
      validIds,
      required: { splitter, session },
    };
  });
}

/** Cuts a buffer into reads: at random places, or one byte at a time. */
export function splitAt(): fc.Arbitrary<(bytes: Buffer) => Buffer[]> {
  return fc.oneof(
    {
      arbitrary: fc.constant((bytes: Buffer) => [...bytes].map((b) => Buffer.from([b]))),
      weight: 1,
    },
    {
      arbitrary: fc
        .array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 24 })
        .map((fractions) => (bytes: Buffer) => {
          const cuts = fractions.map((f) => Math.floor(f * bytes.length)).sort((a, b) => a - b);
          const pieces: Buffer[] = [];
          let from = 0;
          for (const cut of [...cuts, bytes.length]) {
            pieces.push(bytes.subarray(from, cut));
            from = cut;
          }
          return pieces;
        }),
      weight: 4,
    },
  );
}

/** What a client saw, in order: the answer to the command with this id, or an error. */
export type Seen = { answered: number } | "error";

/**
 * Every valid command answered exactly once and in order, and at least the
 * owed number of errors between each two answers.
 */
export function assertResynchronised(
  run: Interleaving,
  seen: readonly Seen[],
  level: "splitter" | "session",
): void {
  const answered = seen.flatMap((s) => (s === "error" ? [] : [s.answered]));
  assert.deepEqual(answered, run.validIds, "every valid command answered once, in order");
  const errors = [0];
  for (const s of seen) {
    if (s === "error") errors.push((errors.pop() ?? 0) + 1);
    else errors.push(0);
  }
  run.required[level].forEach((owed, gap) => {
    const got = errors[gap] ?? 0;
    assert.ok(
      got >= owed,
      `before answer ${gap}: ${got} error(s) for ${owed} malformed message(s)`,
    );
  });
}
