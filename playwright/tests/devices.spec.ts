// Devices from the VM page, as a person uses them: a definition with a
// balloon made in the form (a NIC field error shown and the NIC removed),
// a probe-guest VM started from it, a blank disk created and hot-plugged
// into slot 2 from the page — seen in the slot table, in
// virga-query-devices through the page's QMP console, and by the guest
// itself on its serial console — then detached (the guest sees it go), and
// the balloon set from the memory panel while its live chart runs. Every
// step is in the audit log.
import { expect, test, typeInConsole } from "../fixtures";

test.describe.configure({ mode: "serial" });

test("attach a disk from the VM page, see it in the guest, detach it, set the balloon", async ({
  page,
  stack,
  signIn,
  shoot,
}) => {
  await test.step("sign in", async () => {
    await signIn(page);
  });

  await test.step("a definition with a balloon (a NIC without a bridge is flagged)", async () => {
    await page.goto(`${stack.url}/definitions/new`);
    await page.locator("#name").fill("e2e-devices");
    await expect(page.locator("#kernel")).toHaveValue(/probe\.elf$/);
    await page.locator("#memory").fill("128");
    await page.getByRole("button", { name: "Add NIC" }).click();
    await page.getByRole("button", { name: "Create definition" }).click();
    await expect(page.getByTestId("error-nic-0-name")).toContainText("must be an interface name");
    await page.getByTestId("nic-0").getByRole("button", { name: "Remove" }).click();
    await page.locator("#balloon").check();
    await page.locator("#balloon-deflate-on-oom").check();
    await page.getByRole("button", { name: "Create definition" }).click();
    await expect(page).toHaveURL(/\/definitions$/);
    await expect(page.getByTestId("definition-e2e-devices")).toContainText("yes");
  });

  await test.step("start it; the guest boots with every slot free", async () => {
    await page.getByRole("link", { name: "Virtual machines" }).click();
    await page.locator("#start-definition").selectOption({ label: "e2e-devices" });
    await page.locator("#start-name").fill("e2e devices");
    await page
      .getByRole("form", { name: "Start a VM" })
      .getByRole("button", { name: "Start" })
      .click();
    await expect(page).toHaveURL(/\/vms\/e2e-devices-[0-9a-f]+$/);
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await expect(page.getByTestId("console-transcript")).toContainText("PROBE ready", {
      timeout: 60_000,
    });
    await expect(page.getByTestId("vm-devices")).toHaveAttribute("data-live", "true");
    for (let slot = 0; slot < 6; slot++) {
      await expect(page.getByTestId(`disk-slot-${slot}`)).toHaveAttribute("data-occupied", "false");
    }
    await expect(page.getByTestId("nic-slot-0")).toContainText("down");
  });

  await test.step("create a blank 16 MiB disk and hot-plug it into slot 2 (vdc)", async () => {
    const form = page.getByRole("form", { name: "Attach a disk" });
    await form.locator("#attach-disk-image").selectOption("new");
    await form.locator("#attach-disk-name").fill("e2e-disk.img");
    await form.locator("#attach-disk-size").fill("16");
    await form.locator("#attach-disk-slot").selectOption("2");
    await form.getByRole("button", { name: "Attach disk" }).click();
    const slot = page.getByTestId("disk-slot-2");
    await expect(slot).toHaveAttribute("data-occupied", "true");
    await expect(slot).toContainText("e2e-disk.img");
    await expect(slot).toContainText("16 MiB");
    await expect(slot).toContainText("read-write");
    await shoot("vm-devices");
  });

  await test.step("virga-query-devices shows it in slot 2", async () => {
    await page.locator("#qmp-execute").fill("virga-query-devices");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page.getByTestId("qmp-output")).toContainText("e2e-disk.img");
    await expect(page.getByTestId("qmp-output")).toContainText('"guest-name": "vdc"');
  });

  await test.step("the guest sees the disk appear (16 MiB = 32768 sectors)", async () => {
    await typeInConsole(page, "blk 2 info");
    await expect(page.getByTestId("console-transcript")).toContainText(
      /OK blk info capacity=32768 ro=0 changes=[1-9]/,
    );
  });

  await test.step("detach it: the slot is free and the guest sees it gone", async () => {
    await page.getByTestId("disk-slot-2").getByRole("button", { name: "Detach" }).click();
    await expect(page.getByTestId("disk-slot-2")).toHaveAttribute("data-occupied", "false");
    await typeInConsole(page, "blk 2 info");
    await expect(page.getByTestId("console-transcript")).toContainText(
      /OK blk info capacity=0 ro=0 changes=[2-9]/,
    );
  });

  await test.step("set the balloon to 64 MiB; the chart follows the guest", async () => {
    const panel = page.getByTestId("memory-panel");
    await expect(panel.getByTestId("memory-boot")).toHaveText("128 MiB");
    // Polled every 2 s while the page is open.
    await expect
      .poll(async () => Number(await page.getByTestId("memory-chart").getAttribute("data-samples")))
      .toBeGreaterThanOrEqual(2);
    await page.locator("#balloon-target-mib").fill("64");
    await page.getByRole("button", { name: "Set balloon" }).click();
    await expect(panel.getByTestId("balloon-target")).toHaveText("64 MiB");
    await expect(panel.getByTestId("balloon-actual")).toHaveText("64 MiB");
    await typeInConsole(page, "balloon info");
    await expect(page.getByTestId("console-transcript")).toContainText(
      "OK balloon target=16384 actual=16384",
    );
    await expect(panel.getByTestId("memory-available")).not.toHaveText("—");
    await shoot("vm-memory");
  });

  await test.step("quit; every device action is in the audit log", async () => {
    await page.getByLabel("Actions").getByRole("button", { name: "Quit" }).click();
    await expect(page.getByTestId("vm-state")).toHaveText("shutdown", { timeout: 60_000 });
    await page.getByRole("link", { name: "Audit log" }).click();
    const table = page.getByTestId("audit-table");
    for (const action of [
      "definitions.create",
      "images.create",
      "vms.attachDisk",
      "vms.detachDisk",
      "vms.setBalloon",
    ]) {
      await expect(table.locator(`tr[data-action="${action}"]`).first()).toContainText("ok");
    }
  });
});
