// The portal's API tests (api.test.ts) again, with the portal on PostgreSQL:
// a throwaway server from Debian's packages, started by the harness in a
// temporary directory on a free port and stopped after. Fails, naming why,
// when PostgreSQL is not installed or does not start.
import { describe } from "node:test";

process.env.VIRGA_TEST_DATABASE = "postgresql";

await describe("on PostgreSQL", async () => {
  await import("./api.test");
});
