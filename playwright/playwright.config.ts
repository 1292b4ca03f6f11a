// End-to-end tests in Debian's Chromium (/usr/bin/chromium; Playwright
// downloads no browser) against a real portal, a real virgad and real
// probe-guest VMs, started by the fixtures in fixtures/.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: "./tests",
  outputDir: "./artifacts/test-results",
  timeout: 240_000,
  expect: { timeout: 30_000 },
  workers: 1,
  fullyParallel: false,
  retries: 0,
  reporter: [
    ["list"],
    ["json", { outputFile: "artifacts/results.json" }],
    ["html", { outputFolder: "artifacts/report", open: "never" }],
  ],
  use: {
    browserName: "chromium",
    launchOptions: {
      executablePath: process.env.VIRGA_CHROMIUM ?? "/usr/bin/chromium",
      args: ["--disable-quic", "--disable-gpu", "--disable-dev-shm-usage"],
    },
    viewport: { width: 1400, height: 1000 },
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    actionTimeout: 30_000,
  },
});
