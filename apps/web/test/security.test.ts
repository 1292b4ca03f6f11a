// The portal's account and record keeping against a real portal, virgad and
// probe-guest VM (docs/security.md): failed sign-ins throttled per user and
// per address, a password change ending the user's other sessions and
// their open consoles, a demoted user losing the keyboard of a console
// already open, the audit log keeping typed text only as its size, and the
// retention sweep deleting what is past its time.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import WebSocket from "ws";
import {
  FailureWatch,
  PortalApi,
  signIn,
  startStack,
  tokenApi,
  waitFor,
  type Stack,
} from "./harness";

let stack: Stack;
let admin: PortalApi;
let vmId: string;
const watch = new FailureWatch();
const track = (fn: () => Promise<void>) => watch.track(fn);

before(async () => {
  stack = await startStack();
  try {
    admin = await tokenApi(stack, "admin", "security-admin");
    const [host] = await admin.trpc.hosts.list.query();
    const probe = (await admin.trpc.definitions.list.query()).find((d) => d.name === "probe-guest");
    assert.ok(host && probe, "the local host and the probe guest are offered");
    vmId = (await admin.trpc.vms.create.mutate({ definitionId: probe.id, hostId: host.id })).id;
  } catch (error) {
    watch.fail();
    throw error;
  }
});

after(async () => {
  await watch.stop(stack);
});

/** POSTs auth.signIn as the sign-in page does; the HTTP status and error message. */
async function attempt(username: string, password: string) {
  const response = await fetch(`${stack.url}/api/trpc/auth.signIn`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: stack.url },
    body: JSON.stringify({ username, password }),
  });
  const body = (await response.json()) as { error?: { message?: string } };
  return { status: response.status, message: body.error?.message ?? "" };
}

async function addUser(username: string, role: "viewer" | "operator" | "admin") {
  const password = `${username}-pass-1`;
  const user = await admin.trpc.users.create.mutate({ username, password, role });
  return { id: user.id, password };
}

/** A console websocket as a browser holds it: the session cookie, from this origin. */
class ConsoleClient {
  readonly ws: WebSocket;
  text = "";
  errors: string[] = [];
  closeCode: number | null = null;
  readonly opened: Promise<void>;

  constructor(session: PortalApi) {
    this.ws = new WebSocket(`${stack.url.replace("http", "ws")}/api/v1/vms/${vmId}/console`, {
      headers: { cookie: session.session?.cookie ?? "", origin: stack.url },
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.on("open", () => resolve());
      this.ws.on("error", reject);
    });
    this.ws.on("message", (raw: Buffer) => {
      const frame = JSON.parse(raw.toString("utf8")) as {
        type: string;
        data?: string;
        message?: string;
      };
      if (frame.type === "data") this.text += Buffer.from(frame.data ?? "", "base64").toString();
      if (frame.type === "error") this.errors.push(frame.message ?? "");
    });
    this.ws.on("close", (code) => (this.closeCode = code));
  }

  type(data: string): void {
    this.ws.send(JSON.stringify({ type: "input", data }));
  }
}

describe("sign-in throttling", () => {
  it(
    "refuses a username after 5 failures, even with its password, naming the wait; others sign in",
    track(async () => {
      const guessed = await addUser("guessed", "viewer");
      const bystander = await addUser("bystander", "viewer");
      for (let i = 1; i <= 5; i++) {
        const failed = await attempt("guessed", `wrong-${i}`);
        assert.equal(failed.status, 401, `attempt ${i}`);
        assert.equal(failed.message, "wrong username or password");
      }
      const refused = await attempt("guessed", guessed.password);
      assert.equal(refused.status, 429);
      assert.match(refused.message, /^too many failed sign-ins for 'guessed'; try again in \d+ s$/);
      const seconds = Number(/in (\d+) s/.exec(refused.message)?.[1]);
      assert.ok(seconds > 800 && seconds <= 900, `a 15-minute block, got ${seconds} s`);
      assert.equal((await attempt("bystander", bystander.password)).status, 200);
    }),
  );

  it(
    "forgets a user's failures once the user signs in",
    track(async () => {
      const typo = await addUser("typo", "viewer");
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 4; i++) assert.equal((await attempt("typo", "mistyped")).status, 401);
        assert.equal((await attempt("typo", typo.password)).status, 200, `round ${round}`);
      }
    }),
  );
});

describe("sessions", () => {
  it(
    "a password change ends the user's other sessions and their consoles; this one stays",
    track(async () => {
      const twice = await addUser("twice", "operator");
      const here = await signIn(stack.url, "twice", twice.password);
      const elsewhere = await signIn(stack.url, "twice", twice.password);
      const screen = new ConsoleClient(elsewhere);
      await screen.opened;
      await waitFor("the guest's boot log on the console", async () =>
        Promise.resolve(screen.text.includes("PROBE ready")),
      );
      assert.equal((await elsewhere.query("vms.list")).status, 200);

      await here.trpc.auth.changePassword.mutate({
        currentPassword: twice.password,
        newPassword: "twice-pass-2",
      });
      assert.equal((await elsewhere.query("vms.list")).status, 401, "the other session ended");
      assert.equal((await here.query("vms.list")).status, 200, "this session stays");
      await waitFor("the other session's console to close", async () =>
        Promise.resolve(screen.closeCode !== null),
      );
      assert.equal(screen.closeCode, 4401);
      assert.deepEqual(screen.errors, ["your session ended; sign in again"]);
      assert.equal((await attempt("twice", "twice-pass-2")).status, 200);
    }),
  );

  it(
    "a user demoted to viewer cannot type into a console opened as an operator",
    track(async () => {
      const typist = await addUser("typist", "operator");
      const session = await signIn(stack.url, "typist", typist.password);
      const screen = new ConsoleClient(session);
      await screen.opened;
      screen.type("help\r");
      await waitFor("the guest to answer typed input", async () =>
        Promise.resolve(screen.text.includes("OK help")),
      );
      await admin.trpc.users.setRole.mutate({ id: typist.id, role: "viewer" });
      await waitFor("the console to refuse the keyboard", async () => {
        screen.type("info\r");
        await new Promise((resolve) => setTimeout(resolve, 500));
        return screen.errors.includes("typing needs the operator role");
      });
      assert.equal(screen.closeCode, null, "viewers still watch");
      screen.ws.close();
    }),
  );
});

describe("audit log", () => {
  it(
    "keeps console input and raw QMP arguments as their size, never their text",
    track(async () => {
      const operator = await tokenApi(stack, "operator", "security-operator");
      await operator.trpc.vms.consoleInput.mutate({ id: vmId, data: "hunter2-typed\r" });
      await operator.trpc.vms.qmp
        .mutate({ id: vmId, execute: "query-status", arguments: { note: "s3cr3t-arg" } })
        .catch(() => undefined);
      await operator.qmp(vmId, {
        execute: "query-status",
        arguments: { note: "s3cr3t-gateway" },
      });
      const entries = await admin.trpc.audit.list.query({ limit: 500 });
      const text = JSON.stringify(entries);
      for (const secret of ["hunter2-typed", "s3cr3t-arg", "s3cr3t-gateway"]) {
        assert.ok(!text.includes(secret), `${secret} is not in the audit log`);
      }
      const typed = entries.find((e) => e.action === "vms.consoleInput");
      assert.match(typed?.input ?? "", /"data":"\(14 characters\)"/);
      const gateway = entries.find((e) => e.action === "gateway.qmp" && e.input?.includes("note"));
      assert.match(gateway?.input ?? "", /"execute":"query-status"/);
      assert.match(gateway?.input ?? "", /"arguments":"\(\d+ characters: note\)"/);
    }),
  );
});

describe("retention", () => {
  it(
    "deletes audit entries and VM events past their retention; the newest event stays",
    track(async () => {
      // A second portal whose retention is seconds, swept every second.
      const short = await startStack({
        env: {
          VIRGA_RETAIN_AUDIT_DAYS: String(6 / 86400),
          VIRGA_RETAIN_EVENTS_DAYS: String(6 / 86400),
          VIRGA_RETENTION_SWEEP_SECONDS: "1",
        },
      });
      try {
        const owner = await tokenApi(short, "admin", "retention-admin");
        const [host] = await owner.trpc.hosts.list.query();
        const probe = (await owner.trpc.definitions.list.query()).find(
          (d) => d.name === "probe-guest",
        );
        assert.ok(host && probe);
        const vm = await owner.trpc.vms.create.mutate({ definitionId: probe.id, hostId: host.id });
        await waitFor("the VM's events to be stored", async () => {
          const events = await owner.trpc.vms.events.query({ id: vm.id });
          return events.length >= 2;
        });
        const audited = await owner.trpc.audit.list.query({ limit: 500 });
        assert.ok(audited.some((e) => e.action === "vms.create"));

        await waitFor(
          "the sweep to delete the old audit entries and events",
          async () => {
            const entries = await owner.trpc.audit.list.query({ limit: 500 });
            const events = await owner.trpc.vms.events.query({ id: vm.id });
            return !entries.some((e) => e.action === "vms.create") && events.length === 1;
          },
          30_000,
        );
        // What happens now is recorded as ever.
        await owner.trpc.vms.pause.mutate({ id: vm.id });
        const after = await owner.trpc.audit.list.query({ limit: 500 });
        assert.ok(after.some((e) => e.action === "vms.pause" && e.result === "ok"));
        assert.match(short.output(), /\[retention\] deleted \d+ events, \d+ audit entries/);
      } finally {
        await short.stop();
      }
    }),
  );
});

// Last: it blocks every sign-in from this address for 15 minutes.
describe("sign-in throttling per address", () => {
  it(
    "refuses an address after 20 failures across usernames",
    track(async () => {
      const spare = await addUser("spare", "viewer");
      // 5 + 12 failures so far in this file (guessed, typo); spray the rest.
      for (let i = 0; i < 3; i++) {
        assert.equal((await attempt(`nobody-${i}`, "guess")).status, 401);
      }
      const refused = await attempt("spare", spare.password);
      assert.equal(refused.status, 429);
      assert.match(
        refused.message,
        /^too many failed sign-ins from this address; try again in \d+ s$/,
      );
    }),
  );
});
