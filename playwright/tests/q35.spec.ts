// A q35 VM from the browser: a definition made in the form with the q35
// machine type and a root port (a bad port number flagged by its field),
// a probe-guest VM started from it whose console shows the probe finding
// the host bridge and the root port on pcie.0, the VM page's device panel
// offering the free root port, a new disk hot-plugged into it (the guest
// lists it once it powers the slot) and detached (shown pending until the
// guest powers the slot off), the host's PCI devices (VFIO) listed as
// sysfs has them, and an attach refused by the VMM with its reason shown.
import { readdirSync } from "node:fs";
import { expect, test, typeInConsole } from "../fixtures";

test.describe.configure({ mode: "serial" });

test("define a q35 VM with a root port, start it, see its console and PCI devices", async ({
  page,
  stack,
  signIn,
  shoot,
}) => {
  await test.step("sign in", async () => {
    await signIn(page);
  });

  await test.step("a q35 definition with a root port (a bad port is flagged)", async () => {
    await page.goto(`${stack.url}/definitions/new`);
    await page.locator("#name").fill("e2e-q35");
    await expect(page.locator("#kernel")).toHaveValue(/probe\.elf$/);
    await page.locator("#memory").fill("128");
    await page.locator("#machine").selectOption("q35");
    await page.getByRole("button", { name: "Add root port" }).click();
    await expect(page.locator("#rootport-0-id")).toHaveValue("rp1");
    await expect(page.locator("#rootport-0-addr")).toHaveValue("0x2.0");
    await page.locator("#rootport-0-port").fill("300");
    await page.getByRole("button", { name: "Create definition" }).click();
    await expect(page.getByTestId("error-rootport-0-port")).toContainText("must be 0..255");
    await page.locator("#rootport-0-port").fill("1");
    await shoot("q35-definition");
    await page.getByRole("button", { name: "Create definition" }).click();
    await expect(page).toHaveURL(/\/definitions$/);
  });

  await test.step("start it; the probe finds the host bridge and the root port", async () => {
    await page.getByRole("link", { name: "Virtual machines" }).click();
    await page.locator("#start-definition").selectOption({ label: "e2e-q35" });
    await page.locator("#start-name").fill("e2e q35");
    await page
      .getByRole("form", { name: "Start a VM" })
      .getByRole("button", { name: "Start" })
      .click();
    await expect(page).toHaveURL(/\/vms\/e2e-q35-[0-9a-f]+$/);
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await expect(page.getByTestId("console-transcript")).toContainText("PROBE ready", {
      timeout: 60_000,
    });
    await typeInConsole(page, "pci");
    await expect(page.getByTestId("console-transcript")).toContainText("pci 00:00.0 8086:29c0");
    await expect(page.getByTestId("console-transcript")).toContainText("pci 00:02.0 1b36:000c");
  });

  await test.step("the device panel offers the free root port", async () => {
    await expect(page.getByTestId("vm-devices")).toHaveAttribute("data-live", "true");
    await expect(page.getByTestId("root-port-rp1")).toHaveAttribute("data-free", "true");
    await expect(
      page.getByRole("form", { name: "Attach a disk" }).locator("#attach-disk-slot"),
    ).toContainText("rp1 (port 1, 0x2.0)");
  });

  await test.step("hot-plug a new disk into rp1; the guest powers the slot and lists it", async () => {
    const form = page.getByRole("form", { name: "Attach a disk" });
    await form.locator("#attach-disk-image").selectOption("new");
    await form.locator("#attach-disk-name").fill("e2e-q35.img");
    await form.locator("#attach-disk-size").fill("16");
    await form.locator("#attach-disk-slot").selectOption("rp1");
    await form.getByRole("button", { name: "Attach disk" }).click();
    const row = page.getByTestId("pci-disk-rp1");
    await expect(row).toContainText("rp1 0x0.0");
    await expect(row).toContainText("e2e-q35.img");
    await expect(row).toContainText("16 MiB");
    await expect(page.getByTestId("root-port-rp1")).toHaveAttribute("data-free", "false");
    // The probe is the guest's pciehp: it powers the slot, then the disk answers on bus 1.
    await typeInConsole(page, "pci slot 00:02.0 on");
    await expect(page.getByTestId("console-transcript")).toContainText("OK pci slot");
    await typeInConsole(page, "pci");
    await expect(page.getByTestId("console-transcript")).toContainText(
      "pci 01:00.0 1af4:1042 018000",
    );
    await shoot("q35-hotplug");
  });

  await test.step("detach it: pending until the guest powers the slot off", async () => {
    const row = page.getByTestId("pci-disk-rp1");
    await row.getByRole("button", { name: "Detach" }).click();
    await expect(row).toHaveAttribute("data-detaching", "true");
    await expect(row).toContainText("detaching (waiting for the guest)");
    await expect(row.getByRole("button", { name: "Detach" })).toBeDisabled();
    await typeInConsole(page, "pci slot 00:02.0 off");
    await expect(row).toHaveCount(0);
    await expect(page.getByTestId("root-port-rp1")).toHaveAttribute("data-free", "true");
  });

  await test.step("the host's PCI devices are listed; attaching one shows the VMM's refusal", async () => {
    const addresses = readdirSync("/sys/bus/pci/devices").sort();
    const list = page.getByTestId("vfio-devices");
    for (const address of addresses) {
      await expect(list.getByTestId(`host-pci-${address}`)).toBeVisible();
    }
    await expect(list.locator("tbody tr")).toHaveCount(addresses.length);
    await list
      .getByTestId(`host-pci-${addresses[0] ?? ""}`)
      .getByRole("button", { name: "Attach" })
      .click();
    await expect(page.getByTestId("vfio-error")).toContainText("vfio");
    await shoot("q35-vfio");
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await expect(page.getByTestId("root-port-rp1")).toHaveAttribute("data-free", "true");
  });

  await test.step("quit", async () => {
    await page.getByLabel("Actions").getByRole("button", { name: "Quit" }).click();
    await expect(page.getByTestId("vm-state")).toHaveText("shutdown", { timeout: 60_000 });
  });
});
