// The PostgreSQL driver adapter (@prisma/adapter-pg over node-postgres), as
// the portal and the Prisma CLI both use it. For the CLI (`migrations`), three
// 6.19 bugs are worked around:
//
// 1. The schema engine reads PostgreSQL's catalogs, whose `name` and `"char"`
//    columns the adapter refuses ("Column type 'name' could not be
//    deserialized"), so `migrate diff --from-migrations` failed. Their text is
//    plain text: the connection pool reports them as text.
// 2. The engine sends whole migration scripts through queryRaw/executeRaw
//    (without parameters, so node-postgres uses the simple query protocol,
//    which runs them), and the adapter then fails on the array of results
//    node-postgres returns for several statements: the last one is returned.
// 3. executeScript splits a migration at every ';', even inside a comment or
//    a string; the simple query protocol runs the whole script as it is.
import { PrismaPg } from "@prisma/adapter-pg";
import type { Pool, QueryResult } from "pg";

type Adapter = Awaited<ReturnType<PrismaPg["connect"]>>;

const TEXT = 25;
const TEXT_ARRAY = 1009;
/** Catalog types (oid) and the type whose text they can be read as. */
const READ_AS = new Map([
  [18, TEXT], // "char"
  [19, TEXT], // name
  [1002, TEXT_ARRAY], // "char"[]
  [1003, TEXT_ARRAY], // name[]
]);

function patch(adapter: Adapter): Adapter {
  const pool = adapter.underlyingDriver() as Pool & { query: (...args: unknown[]) => unknown };
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<QueryResult>;
  pool.query = async (...args: unknown[]) => {
    const results = (await query(...args)) as QueryResult | QueryResult[];
    const result = Array.isArray(results) ? results.at(-1) : results;
    if (result === undefined) throw new Error("an empty script");
    for (const field of result.fields) {
      field.dataTypeID = READ_AS.get(field.dataTypeID) ?? field.dataTypeID;
    }
    return result;
  };
  adapter.executeScript = async (script: string) => {
    try {
      await query(script);
    } catch (error) {
      // The adapter's own error mapping (codes the engine understands).
      (adapter as unknown as { onError(error: unknown): never }).onError(error);
    }
  };
  return adapter;
}

export function postgresAdapter(url: string, options: { migrations?: boolean } = {}): PrismaPg {
  if (!(options.migrations ?? false)) return new PrismaPg({ connectionString: url });
  // The CLI never closes its pool: idle connections must not hold it open.
  const factory = new PrismaPg({ connectionString: url, allowExitOnIdle: true });
  const connect = factory.connect.bind(factory);
  const connectToShadowDb = factory.connectToShadowDb.bind(factory);
  factory.connect = async () => patch(await connect());
  factory.connectToShadowDb = async () => patch(await connectToShadowDb());
  return factory;
}
