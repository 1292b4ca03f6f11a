// What a person sees when things go wrong: a VM whose VMM dies unasked
// shows why and what its console said last; a username guessed at is
// refused for a while with the time to wait.
import { expect, test } from "../fixtures";

test.describe.configure({ mode: "serial" });

test("a VM whose VMM is killed shows the crash and its last console lines", async ({
  page,
  signIn,
  shoot,
}) => {
  await signIn(page);
  await page.locator("#start-definition").selectOption({ label: "probe-guest" });
  await page.locator("#start-name").fill("e2e crash");
  await page
    .getByRole("form", { name: "Start a VM" })
    .getByRole("button", { name: "Start" })
    .click();
  await expect(page).toHaveURL(/\/vms\/e2e-crash-[0-9a-f]+$/);
  await expect(page.getByTestId("console-transcript")).toContainText("PROBE ready", {
    timeout: 60_000,
  });
  const pidCell = page.getByRole("row", { name: /PID/ }).locator("td");
  await expect(pidCell).toHaveText(/^\d+$/);
  const pid = Number(await pidCell.textContent());
  await expect(page.getByTestId("crash-report")).toHaveCount(0);

  process.kill(pid, "SIGKILL");
  await expect(page.getByTestId("vm-state")).toHaveText("crashed", { timeout: 30_000 });
  const report = page.getByTestId("crash-report");
  await expect(report).toContainText("the VMM was killed by SIGKILL");
  await expect(page.getByTestId("crash-console")).toContainText("PROBE ready");
  await shoot("vm-crashed");
});

test("a username guessed at five times is refused with the time to wait", async ({
  page,
  stack,
  signIn,
}) => {
  // Its own user: the admin must stay able to sign in for the specs after this one.
  await signIn(page);
  await page.goto(`${stack.url}/users`);
  const form = page.getByRole("form", { name: "Add a user" });
  await form.getByLabel("Username").fill("guessed");
  await form.getByLabel("Password").fill("guessed-pass-1");
  await form.getByRole("button", { name: "Add" }).click();
  await expect(page.getByRole("cell", { name: "guessed", exact: true })).toBeVisible();
  await page.context().clearCookies();

  await page.goto(`${stack.url}/sign-in`);
  // Next.js has a route announcer with the alert role too.
  const alert = page.getByRole("form", { name: "Sign in" }).getByRole("alert");
  for (let attempt = 1; attempt <= 5; attempt++) {
    await page.getByLabel("Username").fill("guessed");
    await page.getByLabel("Password").fill(`not-the-password-${attempt}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(alert).toContainText("wrong username or password");
  }
  // Even the right password waits now.
  await page.getByLabel("Password").fill("guessed-pass-1");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(alert).toContainText(/too many failed sign-ins for 'guessed'; try again in \d+ s/);
  await expect(page).toHaveURL(/\/sign-in/);
});
