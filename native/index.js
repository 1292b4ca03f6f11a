"use strict";
// Loads the compiled addon; see index.d.ts for the contract.
const path = require("node:path");
module.exports = require(path.join(__dirname, "build", "Release", "virga_native.node"));
module.exports.probeGuestPath = path.join(__dirname, "probe-guest", "build", "probe.elf");
