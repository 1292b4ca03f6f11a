#!/usr/bin/env node
// virga-vmm launcher. Runs the bundled entry (dist/virga-vmm.cjs, one file:
// faster start) or, when only the TypeScript output exists, the module tree.
"use strict";
const path = require("node:path");

const dist = path.join(__dirname, "..", "dist");
let entry;
for (const candidate of ["virga-vmm.cjs", path.join("src", "cli", "main.js")]) {
  try {
    entry = require(path.join(dist, candidate));
    break;
  } catch (error) {
    if (!(
      error &&
      error.code === "MODULE_NOT_FOUND" &&
      String(error.message).includes(candidate)
    )) {
      throw error;
    }
  }
}
if (entry === undefined) {
  process.stderr.write(
    "virga-vmm: not built yet: run `npm install` (or `npm run build`) at the repository root\n",
  );
  process.exit(1);
}
entry.main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`virga-vmm: error: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
