// -S: build the VM and start its vCPU threads paused; QMP reports
// "prelaunch" until `cont`.
import { switchFlag } from "../flag";

export const startPaused = switchFlag("-S", "start paused (QMP status prelaunch) until QMP cont");
