import type { RouterOutputs } from "@/lib/trpc";

export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  return (
    <span className={`state state-${state}`} data-testid={testId} data-state={state}>
      {state}
    </span>
  );
}

/** Since when a host is unreachable, and when its VMs' states were last seen (hosts/health.ts). */
export type HostStale = NonNullable<RouterOutputs["vms"]["list"][number]["hostStale"]>;

/** A time of today as the browser shows it (the server's rendering may differ by locale). */
export function clockTime(iso: string): string {
  return new Date(iso).toLocaleTimeString();
}

/**
 * A VM's state: live, or while its host is unreachable the last one seen,
 * marked as such so that it is not taken for the live one.
 */
export function VmStateBadge({
  state,
  stale,
  testId,
}: {
  state: string;
  stale: HostStale | null;
  testId?: string;
}) {
  if (stale === null) return <StateBadge state={state} testId={testId} />;
  return (
    <span className="state-stale" data-testid={testId} data-state="stale" suppressHydrationWarning>
      host unreachable since {clockTime(stale.since)}, state last seen
      {stale.lastSeenAt === null ? "" : ` at ${clockTime(stale.lastSeenAt)}`}:{" "}
      <span className="stale-state">{state}</span>
    </span>
  );
}
