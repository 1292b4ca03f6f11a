#!/usr/bin/env node
// virgad launcher: runs the compiled entry (npm run build makes it).
"use strict";
const path = require("node:path");

let entry;
try {
  entry = require(path.join(__dirname, "..", "dist", "src", "daemon", "main.js"));
} catch (error) {
  if (error && error.code === "MODULE_NOT_FOUND" && String(error.message).includes("main.js")) {
    process.stderr.write(
      "virgad: not built yet: run `npm install` (or `npm run build`) at the repository root\n",
    );
    process.exit(1);
  }
  throw error;
}
entry.main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`virgad: error: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
