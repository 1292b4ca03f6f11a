import path from "node:path";
import { fileURLToPath } from "node:url";
import type { NextConfig } from "next";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const config: NextConfig = {
  // Workspace packages shipped as TypeScript source.
  transpilePackages: ["@virga/prisma", "@virga/host"],
  // Native or engine-loading packages stay plain Node requires.
  serverExternalPackages: [
    "better-sqlite3",
    "@prisma/adapter-better-sqlite3",
    "@prisma/adapter-pg",
    "pg",
    "@prisma/client",
    "ws",
  ],
  turbopack: { root },
  outputFileTracingRoot: root,
  // `npm run typecheck -w apps/web` runs tsc over pages and server alike;
  // the build does not repeat it.
  typescript: { ignoreBuildErrors: true },
  poweredByHeader: false,
  devIndicators: false,
};

export default config;
