import type { DatabaseProvider } from "../src/location";

export declare const prismaDir: string;
export declare const PROVIDERS: Record<DatabaseProvider, { schema: string; migrations: string }>;
export declare function postgresqlSchema(sqlite: string): string;
export declare function writeSchema(provider: DatabaseProvider): string;
