// Prisma CLI configuration (read by generate/migrate run from this folder).
// Everything here keeps the CLI offline: the JS engine with a better-sqlite3
// driver adapter runs migrations through Prisma's WASM schema engine, so no
// native engine is ever downloaded. The adapter is wrapped to work around the
// 6.19 bugs listed in src/adapter-fixes.ts.
import { defineConfig } from "prisma/config";
import { migrationAdapter } from "./src/migration-adapter";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: "schema.prisma",
  migrations: { path: "migrations" },
  adapter: migrationAdapter,
});
