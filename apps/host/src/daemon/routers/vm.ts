// vm.*: lifecycle, QMP, events and console (docs/virgad-api.md).
import { tracked } from "@trpc/server";
import { procedure, router, toTRPCError } from "../trpc";
import {
  consoleInput,
  consoleWriteInput,
  createInput,
  eventsInput,
  qmpInput,
  startInput,
  vmId,
} from "./vm.schema";
import { stream } from "./stream";

export interface ConsoleChunk {
  /** Absolute offset of the chunk's first byte in the VM's console stream. */
  offset: number;
  /** The bytes, base64. */
  data: string;
}

export const vmRouter = router({
  list: procedure.query(({ ctx }) => ctx.daemon.list()),
  get: procedure.input(vmId).query(({ ctx, input }) => ctx.daemon.vm(input.id).summary()),
  create: procedure.input(createInput).mutation(({ ctx, input }) => ctx.daemon.create(input)),
  start: procedure
    .input(startInput)
    .mutation(({ ctx, input }) => ctx.daemon.vm(input.id).start(input.paused ?? false)),
  pause: procedure.input(vmId).mutation(({ ctx, input }) => ctx.daemon.vm(input.id).pause()),
  resume: procedure.input(vmId).mutation(({ ctx, input }) => ctx.daemon.vm(input.id).resume()),
  quit: procedure.input(vmId).mutation(({ ctx, input }) => ctx.daemon.vm(input.id).quit()),
  kill: procedure.input(vmId).mutation(({ ctx, input }) => ctx.daemon.vm(input.id).kill()),
  delete: procedure.input(vmId).mutation(({ ctx, input }) => ctx.daemon.remove(input.id)),
  cpus: procedure.input(vmId).query(({ ctx, input }) => ctx.daemon.vm(input.id).cpus()),
  qmp: procedure
    .input(qmpInput)
    .mutation(({ ctx, input }) => ctx.daemon.qmp(input.id, input.execute, input.arguments)),

  /** Every VM's events (or one VM's), resumable by seq. */
  events: procedure.input(eventsInput).subscription(async function* ({ ctx, input, signal }) {
    let feed;
    try {
      if (input.id !== undefined) ctx.daemon.vm(input.id);
      const after = input.lastEventId == null ? undefined : Number(input.lastEventId);
      feed = ctx.daemon.bus.subscribe(input.id, after);
    } catch (error) {
      throw toTRPCError(error);
    }
    yield* stream(feed, signal, ctx.ws, (event) => tracked(String(event.seq), event));
  }),

  /**
   * The console: scrollback first (or from lastEventId), then live output.
   * A message's id is the offset just past its bytes, so resuming from it
   * neither repeats nor skips anything still kept.
   */
  console: procedure.input(consoleInput).subscription(async function* ({ ctx, input, signal }) {
    let feed;
    try {
      const vm = ctx.daemon.vm(input.id);
      feed = vm.relay.subscribe(input.lastEventId == null ? undefined : Number(input.lastEventId));
    } catch (error) {
      throw toTRPCError(error);
    }
    yield* stream(feed, signal, ctx.ws, (chunk) =>
      tracked(String(chunk.offset + chunk.data.length), {
        offset: chunk.offset,
        data: chunk.data.toString("base64"),
      } satisfies ConsoleChunk),
    );
  }),

  consoleInput: procedure.input(consoleWriteInput).mutation(({ ctx, input }) => {
    ctx.daemon.vm(input.id).consoleInput(input.data);
    return {};
  }),
});
