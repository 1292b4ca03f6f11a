// Small JSON files written atomically (temp file + rename), 0600.
import { readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";

export async function writeJson(file: string, value: unknown): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  await writeFile(temp, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
  await rename(temp, file);
}

export function readJson(file: string): unknown {
  return JSON.parse(readFileSync(file, "utf8")) as unknown;
}
