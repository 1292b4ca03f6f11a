export interface PostgresServer {
  port: number;
  /** The postmaster's pid (its backends are its children). */
  pid: number;
  /** The URL of `database` on this server. */
  url(database: string): string;
  /** Creates an empty database; returns its URL. */
  createDatabase(database: string): Promise<string>;
  /** What the server logged so far. */
  log(): string;
  /** Stops the server and deletes its directory. */
  stop(): Promise<void>;
}

export declare function postgresBinDir(): string;
export declare function startPostgres(options?: { durable?: boolean }): Promise<PostgresServer>;
