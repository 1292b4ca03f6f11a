// One QMP command = one {name, args, handler} module. The socket server, and
// later the host daemon's tRPC router and the portal's HTTP gateway, are all
// adapters over the same table (commands/index.ts).
import type { z } from "zod";
import type { VmControl } from "../vmm/control";

export interface CommandContext {
  readonly vm: VmControl;
  /** Runs fn once the reply has been written (quit answers before it exits). */
  afterReply(fn: () => void): void;
  /** Every command's name, for query-commands. */
  readonly commandNames: readonly string[];
  /** The oldest file descriptor this client sent (SCM_RIGHTS) and no command took yet. */
  takeReceivedFd(): number | undefined;
}

export interface QmpCommand<Args extends z.ZodTypeAny = z.ZodTypeAny> {
  readonly name: string;
  /** A strict zod object: unknown argument keys are errors. */
  readonly args: Args;
  handler(args: z.infer<Args>, ctx: CommandContext): unknown;
}

/** Keeps each command's handler typed by its own schema. */
export function defineCommand<Args extends z.ZodTypeAny>(
  command: QmpCommand<Args>,
): QmpCommand<Args> {
  return command;
}
