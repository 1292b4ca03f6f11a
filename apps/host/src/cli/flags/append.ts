// -append "<cmdline>": the guest kernel command line. The VMM appends one
// virtio_mmio.device= entry per microvm slot to it.
import { z } from "zod";
import { stringFlag } from "../flag";

// The Linux boot protocol caps the command line (2048 bytes on x86 by default).
export const MAX_CMDLINE = 2048;

export const append = stringFlag(
  "-append",
  '"<kernel command line>"',
  z.string().max(MAX_CMDLINE, `longer than ${MAX_CMDLINE} bytes`),
  "kernel command line",
);
