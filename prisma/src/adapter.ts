// The better-sqlite3 driver adapter, as the portal and the Prisma CLI both use
// it, with the Prisma 6.19 driver-adapter bugs worked around in one place:
//
// 1. On a fresh database the schema engine never creates `_prisma_migrations`
//    (migrate fails with P1014), so it is created on connect.
// 2. The schema engine sends whole multi-statement scripts (the shadow
//    database replay of migrations) through executeRaw/queryRaw, which
//    better-sqlite3's prepare() rejects; such SQL without parameters is run
//    with exec() instead.
// 3. Each connection gets WAL, a busy timeout and foreign keys, so the portal,
//    its custom server and a CLI run can share the file.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";

type Factory = InstanceType<typeof PrismaBetterSQLite3>;
type Adapter = Awaited<ReturnType<Factory["connect"]>>;
type Query = Parameters<Adapter["executeRaw"]>[0];
/** The better-sqlite3 Database the adapter keeps in its `client` field. */
interface RawDatabase {
  exec(sql: string): unknown;
  pragma(sql: string): unknown;
}

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id" TEXT PRIMARY KEY NOT NULL,
  "checksum" TEXT NOT NULL,
  "finished_at" DATETIME,
  "migration_name" TEXT NOT NULL,
  "logs" TEXT,
  "rolled_back_at" DATETIME,
  "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
  "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

function rawDatabase(adapter: Adapter): RawDatabase {
  return (adapter as unknown as { client: RawDatabase }).client;
}

function isMultiStatementError(error: unknown): boolean {
  const cause = (error as { cause?: { originalMessage?: string } } | null)?.cause;
  const text = cause?.originalMessage ?? String(error);
  return /more than one statement/i.test(text);
}

function patch(adapter: Adapter, options: { migrations: boolean }): Adapter {
  const db = rawDatabase(adapter);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  db.pragma("foreign_keys = ON");
  if (options.migrations) db.exec(MIGRATIONS_TABLE);

  const executeRaw = adapter.executeRaw.bind(adapter);
  const queryRaw = adapter.queryRaw.bind(adapter);
  adapter.executeRaw = async (query: Query) => {
    try {
      return await executeRaw(query);
    } catch (error) {
      if (query.args.length > 0 || !isMultiStatementError(error)) throw error;
      db.exec(query.sql);
      return 0;
    }
  };
  adapter.queryRaw = async (query: Query) => {
    try {
      return await queryRaw(query);
    } catch (error) {
      if (query.args.length > 0 || !isMultiStatementError(error)) throw error;
      db.exec(query.sql);
      return { columnNames: [], columnTypes: [], rows: [] };
    }
  };
  return adapter;
}

/** A driver-adapter factory for the SQLite file at `file` (absolute path). */
export function sqliteAdapter(file: string, options: { migrations?: boolean } = {}): Factory {
  mkdirSync(dirname(file), { recursive: true });
  const factory = new PrismaBetterSQLite3({ url: `file:${file}` }, { timestampFormat: "iso8601" });
  const connect = factory.connect.bind(factory);
  const connectToShadowDb = factory.connectToShadowDb.bind(factory);
  const migrations = options.migrations ?? false;
  factory.connect = async () => patch(await connect(), { migrations });
  factory.connectToShadowDb = async () => patch(await connectToShadowDb(), { migrations });
  return factory;
}
