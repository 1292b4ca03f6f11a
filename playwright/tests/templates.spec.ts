// Templates and clones, as a person uses them: a probe-guest VM started on
// the local host is saved as a template from its page (and runs on), the
// template is listed with its source VM and size, three clones are made
// from its page while the progress view lists them as they come up, and
// each clone's page shows it running with a live console whose probe shell
// answers at once (a clone carries on from the template's prompt; it does
// not boot). Every step is in the audit log.
import { expect, test, typeInConsole } from "../fixtures";

test.describe.configure({ mode: "serial" });

test("save a template from a running VM, clone 3, see them run with their consoles", async ({
  page,
  stack,
  signIn,
  shoot,
}) => {
  await test.step("sign in and start a probe guest", async () => {
    await signIn(page);
    await page.locator("#start-definition").selectOption({ label: "probe-guest" });
    await page.locator("#start-name").fill("tpl source");
    await page
      .getByRole("form", { name: "Start a VM" })
      .getByRole("button", { name: "Start" })
      .click();
    await expect(page).toHaveURL(/\/vms\/tpl-source-[0-9a-f]+$/);
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await expect(page.getByTestId("console-transcript")).toContainText("probe>", {
      timeout: 60_000,
    });
  });

  await test.step("save it as a template; it runs on", async () => {
    const form = page.getByRole("form", { name: "Save as template" });
    await form.locator("#template-name").fill("e2e-fleet");
    await form.getByRole("button", { name: "Save as template" }).click();
    await expect(page.getByTestId("save-template-done")).toContainText("e2e-fleet");
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await typeInConsole(page, "info");
    await expect(page.getByTestId("console-transcript")).toContainText("OK info");
  });

  await test.step("the Templates page lists it with its source VM", async () => {
    await page.getByRole("link", { name: "Templates" }).click();
    const row = page.getByTestId("template-e2e-fleet");
    await expect(row).toContainText("tpl source");
    await expect(row).toContainText("2 vCPU, 128 MiB");
    await expect(page.getByTestId("template-e2e-fleet-clones")).toHaveText("0");
    await shoot("templates");
    await row.getByRole("link", { name: "e2e-fleet" }).click();
    await expect(page).toHaveURL(/\/templates\/[a-z0-9]+$/);
  });

  await test.step("clone 3: the progress view lists them as they come up", async () => {
    await page.locator("#clone-count").fill("3");
    await page.getByRole("button", { name: "Clone 3" }).click();
    const progress = page.getByTestId("clone-progress");
    await expect(progress).toHaveAttribute("data-done", "true", { timeout: 60_000 });
    await expect(progress).toContainText("3 of 3 started");
    for (const name of ["e2e-fleet-1", "e2e-fleet-2", "e2e-fleet-3"]) {
      await expect(progress.getByTestId(`clone-${name}`)).toContainText("running");
    }
    await shoot("template-clones");
    await expect(page.getByTestId("template-clones-made")).toHaveText("3");
  });

  const macs = new Set<string>();
  for (const name of ["e2e-fleet-1", "e2e-fleet-2", "e2e-fleet-3"]) {
    await test.step(`${name} runs and its console answers at the probe prompt`, async () => {
      await page.goto(`${stack.url}/templates`);
      await page.getByTestId("template-e2e-fleet").getByRole("link", { name: "e2e-fleet" }).click();
      await page.getByTestId("template-clones").getByRole("link", { name }).click();
      await expect(page).toHaveURL(new RegExp(`/vms/${name}$`));
      await expect(page.getByTestId("vm-state")).toHaveText("running");
      await expect(page.getByText("Cloned from")).toBeVisible();
      // Its NIC slot's MAC on the network (the guest's, the template's, in brackets).
      const mac = page.getByTestId("nic-mac-0");
      await expect(mac).toContainText(/^52:56:/);
      macs.add((await mac.innerText()).split(" ")[0] ?? "");
      // Restored at the prompt: an empty line prompts again, a command answers.
      await typeInConsole(page, "");
      await expect(page.getByTestId("console-transcript")).toContainText("probe>");
      await typeInConsole(page, "info");
      await expect(page.getByTestId("console-transcript")).toContainText("OK info");
      if (name === "e2e-fleet-1") await shoot("clone-console");
    });
  }

  await test.step("each clone has a MAC of its own", () => {
    expect(macs.size).toBe(3);
  });

  await test.step("saving, cloning are in the audit log", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    const table = page.getByTestId("audit-table");
    for (const action of ["templates.create", "templates.clone"]) {
      await expect(table.locator(`tr[data-action="${action}"]`).first()).toContainText("ok");
    }
  });
});
