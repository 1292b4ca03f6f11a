// Disks, NICs and the balloon through the portal's API, against a real
// portal, a real virgad and probe-guest VMs: roles (viewers read, operators
// change), field-named 4xx errors passed on from virgad and the VM,
// definitions with NICs on a bridge, the audit log and the OpenAPI document.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  assertOperatorOnly,
  errorOf,
  FailureWatch,
  PortalApi,
  type Stack,
  startStack,
  tokenApi,
  waitFor,
} from "./harness";

const MIB = 1024 * 1024;
/** A bridge for this run (the tests run as root, like CI), deleted at the end. */
const bridge = `vgpbr${process.pid % 100000}`;

let stack: Stack;
let operator: PortalApi;
let viewer: PortalApi;
let hostId: string;
let probe: { id: string; config: Record<string, unknown> };
let vmId: string;
const watch = new FailureWatch();

function ip(args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

before(async () => {
  ip(["link", "add", bridge, "type", "bridge"]);
  stack = await startStack();
  await setUp().catch((error: unknown) => {
    watch.fail();
    throw error;
  });
});

async function setUp(): Promise<void> {
  operator = await tokenApi(stack, "operator", "dev-operator");
  viewer = await tokenApi(stack, "viewer", "dev-viewer");
  const [host] = await operator.trpc.hosts.list.query();
  assert.ok(host, "the local host is registered");
  hostId = host.id;
  const found = (await operator.trpc.definitions.list.query()).find(
    (d) => d.name === "probe-guest",
  );
  assert.ok(found, "the probe guest is offered");
  probe = found;
  vmId = (await operator.trpc.vms.create.mutate({ definitionId: probe.id, hostId })).id;
}

after(async () => {
  await watch.stop(stack);
  try {
    ip(["link", "del", bridge]);
  } catch {
    // never made
  }
});

const track = (fn: () => Promise<void>) => watch.track(fn);

describe("device slots", () => {
  it(
    "a viewer sees the six disk slots, the two NIC slots and the balloon of a running VM",
    track(async () => {
      const devices = await viewer.trpc.vms.devices.query({ id: vmId });
      assert.equal(devices.live, true);
      assert.deepEqual(
        devices.disks.map((d) => [d.slot, d.guestName, d.device]),
        [0, 1, 2, 3, 4, 5].map((n) => [n, `vd${"abcdef"[n]}`, null]),
      );
      assert.deepEqual(
        devices.nics.map((n) => [n.slot, n.guestName, n.link]),
        [
          [0, "eth0", "down"],
          [1, "eth1", "down"],
        ],
      );
      assert.match(devices.nics[0]?.mac ?? "", /^52:56:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:00$/);
      assert.equal(devices.balloon?.device, "balloon0", "the built-in probe guest has a balloon");
      assert.ok((await viewer.trpc.images.list.query({ hostId })).length > 0);
    }),
  );

  it(
    "a viewer cannot attach, detach, create images or set the balloon (403)",
    track(async () => {
      const calls = [
        () => viewer.trpc.images.create.mutate({ hostId, name: "v.img", sizeBytes: MIB }),
        () => viewer.trpc.vms.attachDisk.mutate({ id: vmId, file: "/x" }),
        () => viewer.trpc.vms.detachDisk.mutate({ id: vmId, slot: 0 }),
        () => viewer.trpc.vms.attachNic.mutate({ id: vmId, bridge }),
        () => viewer.trpc.vms.detachNic.mutate({ id: vmId, slot: 0 }),
        () => viewer.trpc.vms.setBalloon.mutate({ id: vmId, bytes: 64 * MIB }),
      ];
      await assertOperatorOnly(calls);
    }),
  );

  it(
    "an operator makes a blank image, hot-plugs it into a slot, and detaches it",
    track(async () => {
      const image = await operator.trpc.images.create.mutate({
        hostId,
        name: "portal-data.img",
        sizeBytes: 8 * MIB,
      });
      assert.equal(image.sizeBytes, 8 * MIB);
      const slot = await operator.trpc.vms.attachDisk.mutate({
        id: vmId,
        file: image.path,
        slot: 1,
        readOnly: true,
      });
      assert.deepEqual(
        [slot.slot, slot.guestName, slot.file, slot.readOnly, slot.sizeBytes],
        [1, "vdb", image.path, true, 8 * MIB],
      );
      const seen = await viewer.trpc.vms.devices.query({ id: vmId });
      assert.equal(seen.disks[1]?.file, image.path);
      // The VM's config (what a restart runs) has it, pinned to the slot.
      const vm = await viewer.trpc.vms.get.query({ id: vmId });
      assert.ok(vm.config.drives.some((d) => d.file === image.path && d.readOnly));
      assert.ok(vm.config.devices.some((d) => d.driver === "virtio-blk-device" && d.slot === 1));
      const listed = await viewer.trpc.images.list.query({ hostId });
      assert.deepEqual(listed.find((i) => i.path === image.path)?.usedBy, [vmId]);

      const freed = await operator.trpc.vms.detachDisk.mutate({ id: vmId, slot: 1 });
      assert.equal(freed.device, null);
      assert.equal((await viewer.trpc.vms.devices.query({ id: vmId })).disks[1]?.device, null);
    }),
  );

  it(
    "attaches a NIC on a bridge over plain HTTP; the tap goes with the NIC",
    track(async () => {
      const reply = await operator.mutate("vms.attachNic", { id: vmId, bridge });
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const nic = (reply.body as { result: { data: { ifname: string; bridge: string } } }).result
        .data;
      assert.equal(nic.bridge, bridge);
      assert.ok(existsSync(`/sys/class/net/${nic.ifname}`));
      const seen = await viewer.trpc.vms.devices.query({ id: vmId });
      assert.equal(seen.nics[0]?.link, "up");
      await operator.trpc.vms.detachNic.mutate({ id: vmId, slot: 0 });
      assert.equal(existsSync(`/sys/class/net/${nic.ifname}`), false);
    }),
  );
});

describe("device errors", () => {
  it(
    "are 4xx naming the field, from the portal, virgad or the VM",
    track(async () => {
      const outOfRange = await operator.mutate("vms.attachDisk", {
        id: vmId,
        file: "/x",
        slot: 9,
      });
      assert.equal(outOfRange.status, 400);
      assert.match(errorOf(outOfRange).message, /^slot: must be 0\.\.5/);
      const outside = await operator.mutate("vms.attachDisk", { id: vmId, file: "/etc/passwd" });
      assert.equal(outside.status, 403);
      assert.match(errorOf(outside).message, /^file: '\/etc\/passwd' is outside the image/);
      const image = await operator.trpc.images.create.mutate({
        hostId,
        name: "twice.img",
        sizeBytes: MIB,
      });
      await operator.trpc.vms.attachDisk.mutate({ id: vmId, file: image.path, slot: 4 });
      const other = await operator.trpc.images.create.mutate({
        hostId,
        name: "other.img",
        sizeBytes: MIB,
      });
      const occupied = await operator.mutate("vms.attachDisk", {
        id: vmId,
        file: other.path,
        slot: 4,
      });
      assert.equal(occupied.status, 400);
      assert.match(errorOf(occupied).message, /^addr: block slot 0x4 \(vde\) is occupied by /);
      await operator.trpc.vms.detachDisk.mutate({ id: vmId, slot: 4 });
      const again = await operator.mutate("images.create", {
        hostId,
        name: "twice.img",
        sizeBytes: MIB,
      });
      assert.equal(again.status, 409);
      assert.match(errorOf(again).message, /^name: 'twice\.img' exists already/);
      const badSize = await operator.mutate("images.create", {
        hostId,
        name: "s.img",
        sizeBytes: 5,
      });
      assert.equal(badSize.status, 400);
      assert.match(errorOf(badSize).message, /^sizeBytes: 5 is out of range/);
      const noBridge = await operator.mutate("vms.attachNic", { id: vmId, bridge: "vgnobr0" });
      assert.equal(noBridge.status, 400);
      assert.match(errorOf(noBridge).message, /^bridge: bridge 'vgnobr0' does not exist/);
      const both = await operator.mutate("vms.attachNic", { id: vmId, bridge, tap: "x" });
      assert.equal(both.status, 400);
      assert.match(errorOf(both).message, /^tap: give either tap/);
      const empty = await operator.mutate("vms.detachNic", { id: vmId, slot: 1 });
      assert.equal(empty.status, 400);
      assert.match(errorOf(empty).message, /^slot: NIC slot 1 \(eth1\) is empty$/);
      const noVm = await operator.mutate("vms.detachDisk", { id: "no-such-vm", slot: 0 });
      assert.equal(noVm.status, 404);
      const zero = await operator.mutate("vms.setBalloon", { id: vmId, bytes: 0 });
      assert.equal(zero.status, 400);
      assert.match(errorOf(zero).message, /^bytes: must be a positive number of bytes/);
    }),
  );

  it(
    "an operator sets the balloon; a viewer reads the guest's memory",
    track(async () => {
      const set = await operator.trpc.vms.setBalloon.mutate({ id: vmId, bytes: 96 * MIB });
      assert.equal(set.targetBytes, 96 * MIB);
      await waitFor("the guest to reach the balloon target", async () => {
        const balloon = await viewer.trpc.vms.balloon.query({ id: vmId });
        return balloon.actualBytes === 96 * MIB && balloon.statsUpdatedAt !== null;
      });
      const balloon = await viewer.trpc.vms.balloon.query({ id: vmId });
      assert.equal(balloon.memoryBytes, 128 * MIB);
      assert.ok((balloon.stats["stat-free-memory"] ?? 0) > 0, JSON.stringify(balloon.stats));
      await operator.trpc.vms.setBalloon.mutate({ id: vmId, bytes: 128 * MIB });
    }),
  );

  it(
    "a balloon whose guest driver is not up yet: 412 with the VM's reason",
    track(async () => {
      const paused = await operator.trpc.vms.create.mutate({
        definitionId: probe.id,
        hostId,
        name: "prelaunch",
        paused: true,
      });
      const set = await operator.mutate("vms.setBalloon", { id: paused.id, bytes: 64 * MIB });
      assert.equal(set.status, 412);
      assert.equal(errorOf(set).message, "No balloon device has been activated");
      const read = await viewer.query("vms.balloon", { id: paused.id });
      assert.equal(read.status, 412);
      await operator.trpc.vms.kill.mutate({ id: paused.id });
      await operator.trpc.vms.delete.mutate({ id: paused.id });
    }),
  );
});

describe("definitions with NICs", () => {
  it(
    "checks NICs by field: tap or bridge, a MAC, at most the free NIC slots",
    track(async () => {
      const neither = await operator.mutate("definitions.create", {
        name: "nic-neither",
        config: probe.config,
        nics: [{ mac: "52:54:00:00:00:01" }],
      });
      assert.equal(neither.status, 400);
      assert.match(errorOf(neither).message, /^nics\.0\.bridge: give either a tap or a bridge/);
      const badMac = await operator.mutate("definitions.create", {
        name: "nic-mac",
        config: probe.config,
        nics: [{ bridge, mac: "01:00:00:00:00:00" }],
      });
      assert.equal(badMac.status, 400);
      assert.match(errorOf(badMac).message, /^nics\.0\.mac: must be a unicast MAC/);
      const three = await operator.mutate("definitions.create", {
        name: "nic-three",
        config: probe.config,
        nics: [{ bridge }, { bridge }, { bridge }],
      });
      assert.equal(three.status, 400);
      assert.match(errorOf(three).message, /^nics: at most 2 NICs/);
    }),
  );

  it(
    "a VM made from a definition with a bridge NIC gets a tap on it; a missing bridge refuses the create and leaves nothing",
    track(async () => {
      const definition = await operator.trpc.definitions.create.mutate({
        name: "probe-on-bridge",
        config: probe.config,
        nics: [{ bridge, mac: "52:54:00:12:34:56" }],
      });
      assert.deepEqual(definition.nics, [{ bridge, mac: "52:54:00:12:34:56" }]);
      const created = await operator.trpc.vms.create.mutate({
        definitionId: definition.id,
        hostId,
      });
      const devices = await viewer.trpc.vms.devices.query({ id: created.id });
      const [nic] = devices.nics;
      assert.ok(nic !== undefined);
      assert.equal(nic.bridge, bridge);
      assert.equal(nic.mac, "52:54:00:12:34:56", "a boot-time NIC takes its MAC");
      const tap = nic.ifname ?? "";
      assert.ok(existsSync(`/sys/class/net/${tap}`));
      await operator.trpc.vms.quit.mutate({ id: created.id });
      await operator.trpc.vms.delete.mutate({ id: created.id });
      assert.equal(existsSync(`/sys/class/net/${tap}`), false, "the tap goes with the VM");

      const broken = await operator.trpc.definitions.create.mutate({
        name: "probe-on-nothing",
        config: probe.config,
        nics: [{ bridge: "vgnobr1" }],
      });
      const before = (await operator.trpc.vms.list.query()).length;
      const refused = await operator.mutate("vms.create", { definitionId: broken.id, hostId });
      assert.equal(refused.status, 400);
      assert.match(errorOf(refused).message, /^nics\.0\.bridge: bridge 'vgnobr1' does not exist/);
      await waitFor(
        "no VM left behind",
        async () => (await operator.trpc.vms.list.query()).length === before,
      );
    }),
  );
});

describe("audit and OpenAPI", () => {
  it(
    "audits every device action with its result",
    track(async () => {
      const admin = await tokenApi(stack, "admin", "dev-auditor");
      const entries = await admin.trpc.audit.list.query({ limit: 500 });
      const has = (action: string, result: string) =>
        entries.some((e) => e.action === action && e.result === result);
      for (const action of [
        "images.create",
        "vms.attachDisk",
        "vms.detachDisk",
        "vms.attachNic",
        "vms.detachNic",
      ]) {
        assert.ok(has(action, "ok"), `${action} ok`);
        assert.ok(has(action, "error"), `${action} refused`);
      }
      assert.ok(has("vms.setBalloon", "ok"));
      assert.ok(has("vms.setBalloon", "error"));
      assert.ok(
        entries.some(
          (e) =>
            e.action === "vms.attachDisk" && e.target === vmId && e.actor.includes("dev-operator"),
        ),
      );
    }),
  );

  it(
    "lists the device procedures with their input schemas",
    track(async () => {
      const response = await fetch(`${stack.url}/api/v1/openapi.json`, {
        headers: { authorization: `Bearer ${operator.token ?? ""}` },
      });
      const doc = (await response.json()) as { paths: Record<string, Record<string, unknown>> };
      for (const path of [
        "vms.devices",
        "vms.balloon",
        "images.list",
        "vms.attachDisk",
        "vms.detachDisk",
        "vms.attachNic",
        "vms.detachNic",
        "vms.setBalloon",
        "images.create",
      ]) {
        assert.ok(`/api/trpc/${path}` in doc.paths, path);
      }
      const attach = JSON.stringify(doc.paths["/api/trpc/vms.attachDisk"]);
      assert.match(attach, /"slot":\{"type":"integer","minimum":0,"maximum":5\}/);
      assert.ok("get" in (doc.paths["/api/trpc/vms.devices"] ?? {}));
      assert.ok("post" in (doc.paths["/api/trpc/vms.setBalloon"] ?? {}));
    }),
  );
});
