// vms.devices, vms.attachDisk/detachDisk, vms.attachNic/detachNic,
// vms.balloon, vms.setBalloon: a VM's disk and NIC slots and its balloon,
// through its host's virgad (which hot-plugs into a running VM and records
// the change in the VM's config). A q35 VM has root ports and PCI functions
// instead: vms.attachPciDisk/attachPciNic/attachVfio put one into a root
// port, vms.detachPci takes one out (pending until the guest lets go). Inputs are virgad's own schemas, so a bad
// field is named the same way here and there. Reads need the viewer role,
// changes the operator role; every change is audited (trpc.ts).
import {
  attachDiskInput,
  attachNicInput,
  attachPciDiskInput,
  attachPciNicInput,
  attachVfioInput,
  detachDiskInput,
  detachNicInput,
  detachPciInput,
  setBalloonInput,
} from "@virga/host/src/daemon/routers/devices.schema";
import { z } from "zod";
import { hub } from "../../hosts/hub";
import type { VirgadClient } from "../../hosts/virgad";
import { upsertVm } from "../../hosts/vm-rows";
import { findVm, onHost } from "../../vms/lookup";
import { operatorProcedure, router, viewerProcedure } from "../trpc";

const vmId = z.object({ id: z.string().min(1) });

/**
 * Runs a device change on the VM's host, then stores the VM's new config
 * and tells the browsers (a `DEVICES` event on the live stream).
 */
async function change<T>(
  id: string,
  call: (client: VirgadClient, hostVmId: string) => Promise<T>,
): Promise<T> {
  const vm = await findVm(id);
  const result = await onHost(vm.host, (c) => call(c, vm.hostVmId));
  const summary = await onHost(vm.host, (c) => c.vm.get.query({ id: vm.hostVmId }));
  await upsertVm(vm.host, summary);
  hub().publish({
    vmId: vm.id,
    hostId: vm.hostId,
    event: "DEVICES",
    data: null,
    timestamp: new Date().toISOString(),
    state: null,
  });
  return result;
}

async function read<T>(id: string, call: (client: VirgadClient, hostVmId: string) => Promise<T>) {
  const vm = await findVm(id);
  return onHost(vm.host, (c) => call(c, vm.hostVmId));
}

export const vmDevicesRouter = router({
  /** The six disk slots, the two NIC slots and the balloon; live for a running VM. */
  devices: viewerProcedure
    .input(vmId)
    .query(({ input }) => read(input.id, (c, id) => c.vm.devices.query({ id }))),

  /** The balloon and the guest's memory statistics (a running VM with a balloon). */
  balloon: viewerProcedure
    .input(vmId)
    .query(({ input }) => read(input.id, (c, id) => c.vm.balloon.query({ id }))),

  attachDisk: operatorProcedure
    .input(attachDiskInput)
    .mutation(({ input }) => change(input.id, (c, id) => c.vm.attachDisk.mutate({ ...input, id }))),

  detachDisk: operatorProcedure
    .input(detachDiskInput)
    .mutation(({ input }) =>
      change(input.id, (c, id) => c.vm.detachDisk.mutate({ id, slot: input.slot })),
    ),

  attachNic: operatorProcedure
    .input(attachNicInput)
    .mutation(({ input }) => change(input.id, (c, id) => c.vm.attachNic.mutate({ ...input, id }))),

  detachNic: operatorProcedure
    .input(detachNicInput)
    .mutation(({ input }) =>
      change(input.id, (c, id) => c.vm.detachNic.mutate({ id, slot: input.slot })),
    ),

  attachPciDisk: operatorProcedure
    .input(attachPciDiskInput)
    .mutation(({ input }) =>
      change(input.id, (c, id) => c.vm.attachPciDisk.mutate({ ...input, id })),
    ),

  attachPciNic: operatorProcedure
    .input(attachPciNicInput)
    .mutation(({ input }) =>
      change(input.id, (c, id) => c.vm.attachPciNic.mutate({ ...input, id })),
    ),

  /** A host PCI function into a root port; the VM's refusal (no /dev/vfio, ...) comes back as it is. */
  attachVfio: operatorProcedure
    .input(attachVfioInput)
    .mutation(({ input }) => change(input.id, (c, id) => c.vm.attachVfio.mutate({ ...input, id }))),

  detachPci: operatorProcedure
    .input(detachPciInput)
    .mutation(({ input }) =>
      change(input.id, (c, id) => c.vm.detachPci.mutate({ id, device: input.device })),
    ),

  setBalloon: operatorProcedure
    .input(setBalloonInput)
    .mutation(({ input }) =>
      change(input.id, (c, id) => c.vm.setBalloon.mutate({ id, bytes: input.bytes })),
    ),
});
