// The portal's database client: one PrismaClient for the database
// VIRGA_DATABASE_URL names (./location), over the better-sqlite3 adapter for a
// SQLite file or node-postgres for a PostgreSQL server. Each provider has its
// own generated client (the query compiler is per provider); both come from
// schema.prisma, so the SQLite client's types describe both.
import { PrismaClient } from "../generated/sqlite/client";
import { PrismaClient as PostgresqlClient } from "../generated/postgresql/client";
import { sqliteAdapter } from "./adapter";
export { BUSY_RETRY_MS, isBusyError } from "./adapter";
import { databaseUrl, providerOf, sqliteFile } from "./location";
import { postgresAdapter } from "./postgres-adapter";

export * from "../generated/sqlite/client";
export { databaseUrl, providerOf, repositoryRoot, type DatabaseProvider } from "./location";

export function createPrismaClient(url: string = databaseUrl()): PrismaClient {
  if (providerOf(url) === "postgresql") {
    return new PostgresqlClient({ adapter: postgresAdapter(url) }) as unknown as PrismaClient;
  }
  return new PrismaClient({ adapter: sqliteAdapter(sqliteFile(url)) });
}
