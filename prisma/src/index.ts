// The portal's database client: one PrismaClient over the better-sqlite3
// adapter, for the file chosen by ./location.
import { PrismaClient } from "../generated/client";
import { sqliteAdapter } from "./adapter";
import { databaseFile } from "./location";

export * from "../generated/client";
export { databaseFile, repositoryRoot } from "./location";

export function createPrismaClient(file: string = databaseFile()): PrismaClient {
  return new PrismaClient({ adapter: sqliteAdapter(file) });
}
