// Tables that would grow forever are swept: VM events and audit entries
// past their retention (env.ts, docs/security.md), and sessions past their
// expiry. Each host's newest stored event is kept whatever its age: the
// watcher resumes virgad's event stream after it, and without it would
// fetch (and store again) events the sweep had just removed. Several
// portals on one database may sweep at once; deleting is idempotent.
import { db } from "./db";
import { env } from "./env";

const DAY_MS = 24 * 3600 * 1000;

export interface SweepResult {
  events: number;
  audit: number;
  sessions: number;
}

export async function sweepRetention(now = new Date()): Promise<SweepResult> {
  const settings = env();
  const eventCutoff = new Date(now.getTime() - settings.VIRGA_RETAIN_EVENTS_DAYS * DAY_MS);
  const auditCutoff = new Date(now.getTime() - settings.VIRGA_RETAIN_AUDIT_DAYS * DAY_MS);
  const newest = await db().event.groupBy({ by: ["hostId"], _max: { seq: true } });
  const keep = newest.flatMap((row) =>
    row._max.seq === null ? [] : [{ hostId: row.hostId, seq: row._max.seq }],
  );
  const events = await db().event.deleteMany({
    where: { timestamp: { lt: eventCutoff }, NOT: keep.length === 0 ? undefined : { OR: keep } },
  });
  const audit = await db().auditLog.deleteMany({ where: { at: { lt: auditCutoff } } });
  const sessions = await db().session.deleteMany({ where: { expiresAt: { lt: now } } });
  return { events: events.count, audit: audit.count, sessions: sessions.count };
}

/** Sweeps now and then every VIRGA_RETENTION_SWEEP_SECONDS; returns the stop. */
export function startRetentionSweeps(): () => void {
  const run = () => {
    sweepRetention()
      .then((swept) => {
        if (swept.events + swept.audit + swept.sessions > 0) {
          console.log(
            `[retention] deleted ${swept.events} events, ${swept.audit} audit entries, ${swept.sessions} expired sessions`,
          );
        }
      })
      .catch((error: unknown) => {
        // A busy or unreachable database: the next sweep tries again.
        console.error(`[retention] sweep failed: ${String(error)}`);
      });
  };
  run();
  const timer = setInterval(run, env().VIRGA_RETENTION_SWEEP_SECONDS * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
