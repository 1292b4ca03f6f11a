// Live migration as a person does it: a second virgad on this machine is
// registered as host "second"; a probe-guest VM started on the local host
// starts counting on its console, is migrated from its page (destination,
// downtime limit, bandwidth) while the live view draws its progress, and
// then runs on "second" under the same page, still counting. The
// Migrations page lists it with its hosts, bytes and downtime; the audit
// log has it. A VM moved to a new process on its own host keeps its page
// and counts on.
import { startExtraHost, tokenApi, type ExtraHost } from "../../apps/web/test/harness";
import { expect, test, typeInConsole } from "../fixtures";

test.describe.configure({ mode: "serial" });

let second: ExtraHost | undefined;

test.afterAll(async () => {
  await second?.stop();
});

function lastCount(text: string): number {
  const last = [...text.matchAll(/count (\d+)/g)].at(-1);
  return last === undefined ? 0 : Number(last[1]);
}

test("migrate a counting VM to another host from its page and see the history row", async ({
  page,
  stack,
  signIn,
  shoot,
}) => {
  await test.step("a second host is registered", async () => {
    second = await startExtraHost(stack, "host-b");
    const admin = await tokenApi(stack, "admin", "e2e-mig-admin");
    await admin.trpc.hosts.add.mutate({ name: "second", url: second.url, token: second.token });
  });

  await test.step("sign in, start a probe guest and let it count", async () => {
    await signIn(page);
    await page.locator("#start-definition").selectOption({ label: "probe-guest" });
    await page.locator("#start-name").fill("mover");
    await page
      .getByRole("form", { name: "Start a VM" })
      .getByRole("button", { name: "Start" })
      .click();
    await expect(page).toHaveURL(/\/vms\/mover-[0-9a-f]+$/);
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await expect(page.getByTestId("console-transcript")).toContainText("probe>", {
      timeout: 60_000,
    });
    await typeInConsole(page, "count");
    await expect(page.getByTestId("console-transcript")).toContainText("count 10");
  });

  await test.step("migrate it to 'second': the live view follows it to the end", async () => {
    const status = page.getByRole("region", { name: "Status" });
    await expect(status).toContainText("local");
    const form = page.getByRole("form", { name: "Migrate" });
    await form.locator("#migrate-destination").selectOption({ label: "second" });
    await form.locator("#migrate-downtime").fill("200");
    await form.locator("#migrate-bandwidth").fill("0");
    await form.getByRole("button", { name: "Migrate" }).click();
    const progress = page.getByTestId("migration-progress");
    await expect(progress).toHaveAttribute("data-status", "completed", { timeout: 60_000 });
    await expect(page.getByTestId("migration-status")).toHaveText("completed");
    await expect(page.getByTestId("migration-downtime")).toHaveText(/^\d+$/);
    await expect(page.getByTestId("migration-chart")).toHaveAttribute("data-samples", /^[1-9]/);
    await expect(page.getByTestId("migration-rounds").locator("tbody tr").first()).toBeVisible();
    await expect(status.getByRole("row", { name: /Host/ })).toContainText("second");
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await shoot("migration-done");
  });

  await test.step("on 'second' the guest counts on", async () => {
    const before = lastCount((await page.getByTestId("console-transcript").textContent()) ?? "");
    await page.reload();
    await expect(page.getByRole("region", { name: "Status" })).toContainText("second");
    await expect(page.getByTestId("console-transcript")).toContainText(`count ${before + 20}`, {
      timeout: 30_000,
    });
  });

  await test.step("the Migrations page lists it", async () => {
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Migrations" })
      .click();
    const table = page.getByTestId("migrations-table");
    const row = table.locator("tbody tr").first();
    await expect(row).toContainText("mover");
    await expect(row).toContainText("local");
    await expect(row).toContainText("second");
    await expect(row.getByTestId("migration-row-status")).toHaveText("completed");
    await expect(row.getByTestId("migration-row-downtime")).toHaveText(/^\d+ ms$/);
    await expect(row).toContainText("128 MiB");
    await shoot("migrations");
  });

  await test.step("it is in the audit log", async () => {
    await page.getByRole("link", { name: "Audit log" }).click();
    await expect(
      page.getByTestId("audit-table").locator('tr[data-action="migrations.start"]').first(),
    ).toContainText("ok");
  });
});

test("move a VM to a new process on its own host from its page", async ({
  page,
  signIn,
  shoot,
}) => {
  await test.step("sign in, start a probe guest and let it count", async () => {
    await signIn(page);
    await page.locator("#start-definition").selectOption({ label: "probe-guest" });
    await page.locator("#start-name").fill("stayer");
    await page
      .getByRole("form", { name: "Start a VM" })
      .getByRole("button", { name: "Start" })
      .click();
    await expect(page).toHaveURL(/\/vms\/stayer-[0-9a-f]+$/);
    await expect(page.getByTestId("console-transcript")).toContainText("probe>", {
      timeout: 60_000,
    });
    await typeInConsole(page, "count");
    await expect(page.getByTestId("console-transcript")).toContainText("count 10");
  });

  await test.step("its own host is offered last, as a new process; the move completes", async () => {
    const form = page.getByRole("form", { name: "Migrate" });
    const options = form.locator("#migrate-destination option");
    await expect(options.last()).toHaveText("local (this host: a new process)");
    await form
      .locator("#migrate-destination")
      .selectOption({ label: "local (this host: a new process)" });
    await form.locator("#migrate-bandwidth").fill("0");
    await form.getByRole("button", { name: "Migrate" }).click();
    const progress = page.getByTestId("migration-progress");
    await expect(progress).toHaveAttribute("data-status", "completed", { timeout: 60_000 });
    await expect(progress).toContainText("To a new process on local");
    await expect(progress).toContainText("the VM runs in a new process on local now");
    await expect(page.getByRole("region", { name: "Status" })).toContainText("local");
    await expect(page.getByTestId("vm-state")).toHaveText("running");
    await shoot("migration-local-done");
  });

  await test.step("the console follows it into the new process, no reload needed", async () => {
    const before = lastCount((await page.getByTestId("console-transcript").textContent()) ?? "");
    await expect(page.getByTestId("console-transcript")).toContainText(`count ${before + 20}`, {
      timeout: 30_000,
    });
    // Resumed where it was: no count twice, none missing.
    const text = (await page.getByTestId("console-transcript").textContent()) ?? "";
    const counts = [...text.matchAll(/count (\d+)/g)].map((m) => Number(m[1]));
    const skips = counts.slice(1).filter((n, i) => n !== (counts[i] ?? 0) + 1);
    // The transcript around the first skip says whether a line came twice or got cut.
    const at = skips.length === 0 ? -1 : text.indexOf(`count ${skips[0]}`);
    expect(skips, JSON.stringify(text.slice(Math.max(0, at - 120), at + 60))).toEqual([]);
  });

  await test.step("the Migrations page marks it as a new process", async () => {
    await page
      .getByRole("navigation", { name: "Main" })
      .getByRole("link", { name: "Migrations" })
      .click();
    const row = page.getByTestId("migrations-table").locator("tbody tr").first();
    await expect(row).toContainText("stayer");
    await expect(row).toContainText("(new process)");
    await expect(row.getByTestId("migration-row-status")).toHaveText("completed");
  });
});
