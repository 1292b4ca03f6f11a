// Adding a host that listens beyond loopback, as an admin does it: the
// portal shows the certificate fingerprint the host presents, the admin
// confirms it, and the host is listed with its token's scope and the pinned
// fingerprint; the local host shows its full token and no pin.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { killVms, REPO_ROOT } from "../../apps/web/test/harness";
import { expect, test } from "../fixtures";

const VIRGAD = path.join(REPO_ROOT, "apps", "host", "bin", "virgad.js");

test("add an https host by confirming its certificate fingerprint", async ({
  page,
  signIn,
  shoot,
}) => {
  const runDir = path.join(mkdtempSync(path.join(tmpdir(), "virga-e2e-tls-")), "run");
  const virgad = spawn(process.execPath, [VIRGAD, "--listen", "0.0.0.0:0", "--run-dir", runDir]);
  try {
    let stdout = "";
    virgad.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    await expect.poll(() => /fingerprint (\S+)/.test(stdout), { timeout: 20_000 }).toBe(true);
    const port = /listening on https:\/\/0\.0\.0\.0:(\d+)/.exec(stdout)?.[1] ?? "";
    const fingerprint = /fingerprint (\S+)/.exec(stdout)?.[1] ?? "";
    const token = spawnSync(process.execPath, [VIRGAD, "--print-token", "--run-dir", runDir], {
      encoding: "utf8",
    }).stdout.trim();

    await signIn(page);
    await page.getByRole("link", { name: "Hosts" }).click();
    await expect(page.getByTestId("host-local").getByTestId("host-credential")).toHaveText(
      "full token",
    );
    await page.locator("#host-name").fill("remote");
    await page.locator("#host-url").fill(`https://127.0.0.1:${port}`);
    await page.locator("#host-token").fill(token);
    await page.getByRole("button", { name: "Add host" }).click();
    const field = page.locator("#host-fingerprint").locator("..").locator(".field-error");
    await expect(field).toContainText(
      `the host presents a certificate with SHA-256 fingerprint ${fingerprint}`,
    );
    await shoot("hosts-confirm-fingerprint");

    await page.locator("#host-fingerprint").fill(fingerprint);
    await page.getByRole("button", { name: "Add host" }).click();
    const remote = page.getByTestId("host-remote");
    await expect(remote.getByTestId("host-credential")).toHaveText(
      `full token · pinned certificate ${fingerprint}`,
    );
    await expect(remote.getByTestId("host-cpus")).toHaveText(/^\d+$/);
    await shoot("hosts-pinned");
  } finally {
    virgad.kill("SIGTERM");
    // Its control-plane host outlives it by design.
    killVms(runDir);
    rmSync(path.dirname(runDir), { recursive: true, force: true });
  }
});
