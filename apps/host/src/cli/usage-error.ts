/** A command-line mistake: exit code 2 and one stderr line naming the flag
 *  and the form it expects, e.g.
 *  `virga-vmm: -smp: expected [cpus=]n[,maxcpus=n], got 'x'`. */
export class UsageError extends Error {
  readonly flag: string;

  constructor(flag: string, message: string) {
    super(`${flag}: ${message}`);
    this.name = "UsageError";
    this.flag = flag;
  }

  /** The usual shape: what was wrong (optional), the expected form, what was given. */
  static expected(flag: string, syntax: string, got: string, problem?: string): UsageError {
    const prefix = problem === undefined ? "" : `${problem}; `;
    return new UsageError(flag, `${prefix}expected ${syntax}, got '${got}'`);
  }
}
