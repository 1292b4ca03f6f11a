// dist/vmm-control.cjs's entry (scripts/bundle.mjs): what the VM process runs.
import { main } from "./control-plane";

main().catch((error: unknown) => {
  process.stderr.write(
    `virga-vmm: control plane: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
