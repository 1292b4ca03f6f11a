// Runs every Linux scenario inside L1 and writes the results as JSON for
// the host-side test (linux-guests.test.ts) that started this L1.
// usage: node in-l1.js --out FILE [--only SUBSTRING]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SCENARIOS } from "./scenarios";

export interface ScenarioResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

async function main(): Promise<void> {
  const outIndex = process.argv.indexOf("--out");
  const out = outIndex >= 0 ? process.argv[outIndex + 1] : undefined;
  if (out === undefined) throw new Error("--out FILE is required");
  const onlyIndex = process.argv.indexOf("--only");
  const only = onlyIndex >= 0 ? process.argv[onlyIndex + 1] : undefined;
  const results: ScenarioResult[] = [];
  for (const scenario of SCENARIOS) {
    if (only !== undefined && !scenario.name.includes(only)) continue;
    const scratch = mkdtempSync(path.join(tmpdir(), "virga-linux-"));
    const started = performance.now();
    try {
      await scenario.run(scratch);
      results.push({ name: scenario.name, ok: true, ms: performance.now() - started });
      console.log(`ok ${scenario.name}`);
    } catch (error) {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      results.push({
        name: scenario.name,
        ok: false,
        ms: performance.now() - started,
        error: text,
      });
      console.log(`FAIL ${scenario.name}\n${text}`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    // Written after each scenario, so a lost L1 still reports what finished.
    writeFileSync(out, JSON.stringify(results, null, 2));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
