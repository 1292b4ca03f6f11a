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
// 4. better-sqlite3 is synchronous: SQLite's busy timeout sleeps on the
//    portal's only thread, and a database locked by another process (a
//    backup, a sqlite3 shell in a transaction) froze every request for the
//    whole timeout. The portal's connection waits at most BUSY_WAIT_MS
//    inside SQLite; a statement refused as busy is run again after an
//    asynchronous pause, for up to BUSY_RETRY_MS, before its error is thrown.
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

/** How long one attempt may wait inside SQLite, blocking the event loop. */
const BUSY_WAIT_MS = 50;
/** How long a statement is tried again while the database stays locked. */
export const BUSY_RETRY_MS = 5000;
/** The CLI (migrations) serves nobody meanwhile: SQLite's own wait is fine there. */
const CLI_BUSY_WAIT_MS = 5000;

interface MaybeBusy {
  code?: unknown;
  cause?: { originalCode?: unknown };
  meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } };
}

/**
 * SQLITE_BUSY or SQLITE_LOCKED (or an extended code of them), as the driver,
 * the adapter or a Prisma error carrying the adapter's error reports it.
 */
export function isBusyError(error: unknown): boolean {
  const found = error as MaybeBusy | null;
  const code =
    found?.meta?.driverAdapterError?.cause?.originalCode ??
    found?.cause?.originalCode ??
    found?.code;
  return typeof code === "string" && /^SQLITE_(BUSY|LOCKED)/.test(code);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `attempt` again while SQLite answers busy, up to `retryMs`, pausing without blocking. */
export async function retryWhileBusy<T>(
  attempt: () => Promise<T>,
  retryMs: number = BUSY_RETRY_MS,
): Promise<T> {
  const deadline = Date.now() + retryMs;
  for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
    try {
      return await attempt();
    } catch (error) {
      if (!isBusyError(error) || Date.now() + wait > deadline) throw error;
      await pause(wait);
    }
  }
}

/**
 * A statement runner that is tried again while the database is busy, and
 * that runs a multi-statement script without parameters through exec()
 * (answering `empty`), which prepare() refuses.
 */
function robust<R>(run: (query: Query) => Promise<R>, db: RawDatabase, empty: R) {
  return (query: Query): Promise<R> =>
    retryWhileBusy(async () => {
      try {
        return await run(query);
      } catch (error) {
        if (query.args.length > 0 || !isMultiStatementError(error)) throw error;
        db.exec(query.sql);
        return empty;
      }
    });
}

/** The adapter's or a transaction's statements, made robust. */
function retryStatements(queryable: Pick<Adapter, "executeRaw" | "queryRaw">, db: RawDatabase) {
  queryable.executeRaw = robust(queryable.executeRaw.bind(queryable), db, 0);
  queryable.queryRaw = robust(queryable.queryRaw.bind(queryable), db, {
    columnNames: [],
    columnTypes: [],
    rows: [],
  });
}

function patch(adapter: Adapter, options: { migrations: boolean }): Adapter {
  const db = rawDatabase(adapter);
  db.pragma("journal_mode = WAL");
  db.pragma(`busy_timeout = ${options.migrations ? CLI_BUSY_WAIT_MS : BUSY_WAIT_MS}`);
  db.pragma("foreign_keys = ON");
  if (options.migrations) db.exec(MIGRATIONS_TABLE);

  retryStatements(adapter, db);
  // A transaction's statements too (its BEGIN is deferred and never busy; its
  // first write and its COMMIT can be, and may be tried again).
  const startTransaction = adapter.startTransaction.bind(adapter);
  adapter.startTransaction = async (...args: Parameters<Adapter["startTransaction"]>) => {
    const transaction = await startTransaction(...args);
    retryStatements(transaction, db);
    return transaction;
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
