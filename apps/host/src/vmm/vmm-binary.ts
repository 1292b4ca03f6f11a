// Where npm install builds the native virga-vmm executable (native/binding.gyp).
import path from "node:path";

export const VMM_BINARY = path.join(
  path.dirname(require.resolve("@virga/native/package.json")),
  "build",
  "Release",
  "virga-vmm",
);
