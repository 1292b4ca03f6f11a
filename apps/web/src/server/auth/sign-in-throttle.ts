// Failed sign-ins are throttled per username and per client address
// (rate-limiter-flexible, in memory): guessing one user's password, or
// spraying many users from one address, is stopped for a while with a
// clear "try again in N s". A successful sign-in clears its username's
// count, so a user who mistyped does not stay penalised. Counters live in
// each portal process: behind a load balancer with several portals, an
// address gets each portal's allowance (docs/security.md).
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

const WINDOW_S = 15 * 60;
export const FAILURES_PER_USER = 5;
export const FAILURES_PER_ADDRESS = 20;

const byUser = new RateLimiterMemory({
  keyPrefix: "sign-in-user",
  points: FAILURES_PER_USER,
  duration: WINDOW_S,
  blockDuration: WINDOW_S,
});
const byAddress = new RateLimiterMemory({
  keyPrefix: "sign-in-address",
  points: FAILURES_PER_ADDRESS,
  duration: WINDOW_S,
  blockDuration: WINDOW_S,
});

const userKey = (username: string) => username.toLowerCase();
const addressKey = (ip: string | null) => ip ?? "unknown";

function secondsLeft(res: RateLimiterRes | null): number {
  return res === null ? 0 : Math.max(1, Math.ceil(res.msBeforeNext / 1000));
}

/**
 * Why this attempt is refused before its password is even checked, or
 * null. Checked first so a blocked guesser learns nothing from timing.
 */
export async function signInRefusal(username: string, ip: string | null): Promise<string | null> {
  const [user, address] = await Promise.all([
    byUser.get(userKey(username)),
    byAddress.get(addressKey(ip)),
  ]);
  if (address !== null && address.remainingPoints <= 0) {
    return `too many failed sign-ins from this address; try again in ${secondsLeft(address)} s`;
  }
  if (user !== null && user.remainingPoints <= 0) {
    return `too many failed sign-ins for '${username}'; try again in ${secondsLeft(user)} s`;
  }
  return null;
}

async function consume(limiter: RateLimiterMemory, key: string): Promise<void> {
  try {
    await limiter.consume(key);
  } catch (rejection) {
    // The limit was reached by this very failure: the block is recorded.
    if (!(rejection instanceof RateLimiterRes)) throw rejection;
  }
}

export async function recordFailedSignIn(username: string, ip: string | null): Promise<void> {
  await Promise.all([consume(byUser, userKey(username)), consume(byAddress, addressKey(ip))]);
}

export async function recordSignIn(username: string): Promise<void> {
  await byUser.delete(userKey(username));
}
