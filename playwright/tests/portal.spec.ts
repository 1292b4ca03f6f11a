// The portal end to end, as a person uses it: sign in, add a definition
// (with a field error shown and fixed), start it on the local host, watch the
// probe guest's boot log reach its ready marker in the browser console, type
// into it, reconnect it, pause and resume (the VM list in another tab follows
// without a reload), quit, and find every step in the audit log. Screenshots
// of the main pages are kept in playwright/artifacts/screenshots/.
import { expect, test } from "../fixtures";

test.describe.configure({ mode: "serial" });

test("sign in, define, start, console, pause/resume live, quit, audit", async ({
  page,
  context,
  stack,
  signIn,
  shoot,
}) => {
  await test.step("sign in", async () => {
    await page.goto(stack.url);
    await expect(page).toHaveURL(/\/sign-in$/);
    await shoot("sign-in");
    await signIn(page);
  });

  await test.step("hosts: the local virgad, reachable, with CPUs, memory and KVM", async () => {
    await page.getByRole("link", { name: "Hosts" }).click();
    const host = page.getByTestId("host-local");
    await expect(host).toBeVisible();
    await expect(host.getByTestId("host-reachability")).toContainText(/^reachable · last reached/);
    await expect(host.getByTestId("host-cpus")).toHaveText(/^\d+$/);
    await expect(host.getByTestId("host-vms")).toHaveText(/^\d+ live of \d+$/);
    await expect(host.getByTestId("host-free-memory")).toContainText(
      /iB \(\d.* held by live VMs\)/,
    );
    await expect(host.getByTestId("host-kvm")).toContainText("present");
    await shoot("hosts");
  });

  await test.step("add a definition; a bad field is flagged next to it", async () => {
    await page.getByRole("link", { name: "Definitions" }).click();
    await expect(page.getByTestId("definition-probe-guest")).toBeVisible();
    await page.getByRole("link", { name: "New definition" }).click();
    await page.locator("#name").fill("e2e-probe");
    await expect(page.locator("#kernel")).toHaveValue(/probe\.elf$/);
    await page.locator("#smp-cpus").fill("0");
    await expect(page.getByTestId("error-smp-cpus")).toHaveText("must be 1..254");
    await page.locator("#smp-cpus").fill("2");
    await page.locator("#smp-maxCpus").fill("2");
    await expect(page.getByTestId("error-smp")).toContainText("must equal maxcpus");
    await page.locator("#smp-cores").fill("2");
    await expect(page.getByTestId("error-smp")).toHaveCount(0);
    await page.locator("#memory").fill("64");
    await shoot("definition-form");
    await page.getByRole("button", { name: "Create definition" }).click();
    await expect(page).toHaveURL(/\/definitions$/);
    await expect(page.getByTestId("definition-e2e-probe")).toBeVisible();
    await shoot("definitions");
  });

  let vmId = "";
  await test.step("start it on the local host", async () => {
    await page.getByRole("link", { name: "Virtual machines" }).click();
    await page.locator("#start-definition").selectOption({ label: "e2e-probe" });
    await page.locator("#start-name").fill("e2e vm");
    await page
      .getByRole("form", { name: "Start a VM" })
      .getByRole("button", { name: "Start" })
      .click();
    await expect(page).toHaveURL(/\/vms\/e2e-vm-[0-9a-f]+$/);
    vmId = page.url().split("/").pop() ?? "";
    await expect(page.getByTestId("vm-state")).toHaveText("running");
  });

  await test.step("the boot log reaches PROBE ready in the browser console", async () => {
    await expect(page.getByTestId("console-status")).toHaveText("connected");
    await expect(page.getByTestId("console-transcript")).toContainText("PROBE ready", {
      timeout: 60_000,
    });
    await expect(page.getByTestId("serial-console")).toContainText("probe>");
    await expect(page.getByTestId("cpu-table").locator("tbody tr")).toHaveCount(2);
  });

  await test.step("typing reaches the guest's shell", async () => {
    await page.getByTestId("serial-console").click();
    await page.keyboard.type("help");
    await page.keyboard.press("Enter");
    await expect(page.getByTestId("console-transcript")).toContainText("OK help");
  });

  await test.step("the console reconnects without losing or repeating output", async () => {
    await page.getByRole("button", { name: "Reconnect" }).click();
    await expect(page.getByTestId("console-status")).toHaveText("connected");
    await page.getByTestId("serial-console").click();
    await page.keyboard.type("help");
    await page.keyboard.press("Enter");
    await expect(page.getByTestId("console-transcript")).toContainText(/OK help[^]*OK help/);
    const transcript = (await page.getByTestId("console-transcript").textContent()) ?? "";
    expect(transcript.split("PROBE ready").length - 1).toBe(1);
    expect(transcript.split("OK help").length - 1).toBe(2);
  });

  await test.step("raw QMP console", async () => {
    await page.locator("#qmp-execute").fill("query-status");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page.getByTestId("qmp-output")).toContainText('"status": "running"');
    await shoot("vm-detail");
  });

  const list = await context.newPage();
  await test.step("pause: the status changes live, here and in the VM list", async () => {
    await list.goto(`${stack.url}/vms`);
    await expect(list.getByTestId(`state-${vmId}`)).toHaveText("running");
    await expect(list.getByTestId("live-status")).toHaveText("live");
    await page.getByLabel("Actions").getByRole("button", { name: "Pause" }).click();
    await expect(page.getByTestId("vm-state")).toHaveText("paused");
    await expect(list.getByTestId(`state-${vmId}`)).toHaveText("paused");
    await list.bringToFront();
    await shoot("vms-paused");
    await page.bringToFront();
  });

  await test.step("resume", async () => {
    await page.getByLabel("Actions").getByRole("button", { name: "Resume" }).click();
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await expect(list.getByTestId(`state-${vmId}`)).toHaveText("running");
    await expect(page.getByTestId("events-timeline")).toContainText("RESUME");
  });

  await test.step("API tokens: created (shown once) and revoked in the UI", async () => {
    const detail = page.url();
    await page.getByRole("link", { name: "API tokens" }).click();
    await page.locator("#token-name").fill("e2e-script");
    await page.getByRole("button", { name: "Create" }).click();
    await expect(page.getByTestId("new-token")).toHaveText(/^virga_/);
    const token = (await page.getByTestId("new-token").textContent()) ?? "";
    const reply = await fetch(`${stack.url}/api/v1/vms/${vmId}/qmp`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ execute: "query-status" }),
    });
    expect(reply.status).toBe(200);
    expect(await reply.json()).toEqual({
      return: { running: true, singlestep: false, status: "running" },
    });
    await shoot("tokens");
    await page
      .getByRole("row", { name: /e2e-script/ })
      .getByRole("button", { name: "Revoke" })
      .click();
    await expect(page.getByRole("row", { name: /e2e-script/ })).toContainText("revoked");
    await page.goto(detail);
    await expect(page.getByTestId("vm-state")).toHaveText("running");
  });

  await test.step("quit", async () => {
    await page.getByLabel("Actions").getByRole("button", { name: "Quit" }).click();
    await expect(page.getByTestId("vm-state")).toHaveText("shutdown");
    await expect(list.getByTestId(`state-${vmId}`)).toHaveText("shutdown");
    await expect(page.getByTestId("events-timeline")).toContainText("SHUTDOWN");
  });

  await test.step("every step is in the audit log", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    const table = page.getByTestId("audit-table");
    for (const action of [
      "auth.signIn",
      "definitions.create",
      "vms.create",
      "console.attach",
      "vms.qmp",
      "vms.pause",
      "vms.resume",
      "vms.quit",
    ]) {
      await expect(table.locator(`tr[data-action="${action}"]`).first()).toBeVisible();
    }
    await expect(table.locator(`tr[data-action="vms.pause"]`).first()).toContainText(vmId);
    await expect(table.locator(`tr[data-action="vms.pause"]`).first()).toContainText("ok");
    await shoot("audit");
  });
});
