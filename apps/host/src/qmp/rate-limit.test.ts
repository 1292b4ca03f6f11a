import assert from "node:assert/strict";
import { it } from "node:test";
import { RateLimiter } from "./rate-limit";

it("allows a second's worth of commands, then refills over time", () => {
  let now = 0;
  const limiter = new RateLimiter(100, () => now);
  let allowed = 0;
  for (let i = 0; i < 150; i++) if (limiter.take()) allowed++;
  assert.equal(allowed, 100);
  now += 100; // 0.1 s → 10 more
  allowed = 0;
  for (let i = 0; i < 50; i++) if (limiter.take()) allowed++;
  assert.equal(allowed, 10);
});

it("0 means unlimited", () => {
  const limiter = new RateLimiter(0, () => 0);
  for (let i = 0; i < 10000; i++) assert.ok(limiter.take());
});
