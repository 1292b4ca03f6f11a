// Prisma CLI configuration (read by generate/migrate run from this folder).
// Everything here keeps the CLI offline: the JS engine with a driver adapter
// (better-sqlite3 or node-postgres) runs migrations through Prisma's WASM
// schema engine, so no native engine is ever downloaded. The adapters are
// wrapped to work around the 6.19 bugs listed in src/adapter.ts. Which
// provider: VIRGA_PRISMA_PROVIDER (set by scripts/prisma-cli.mjs), else the
// kind of VIRGA_DATABASE_URL.
import { defineConfig } from "prisma/config";
import { PROVIDERS } from "./scripts/schemas.mjs";
import { migrationAdapter, migrationProvider } from "./src/migration-adapter";

const paths = PROVIDERS[migrationProvider()];

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: paths.schema,
  migrations: { path: paths.migrations },
  adapter: migrationAdapter,
});
