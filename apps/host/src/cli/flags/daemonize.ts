// -daemonize: detach from the terminal once the VM is up; the parent exits 0
// after the child reports ready (see vmm/daemonize.ts).
import { switchFlag } from "../flag";

export const daemonize = switchFlag("-daemonize", "run in the background once the VM has started");
