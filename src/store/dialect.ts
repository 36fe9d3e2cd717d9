/**
 * What differs between the SQL engines writ stores its state in, and nothing else: the shared
 * schema (schema.ts) and statements (queries.ts) are written once against these hooks.
 * Every other piece of SQL is written in the subset both engines read the same way.
 */

export type Backend = 'sqlite' | 'postgres';

export interface Dialect {
  readonly backend: Backend;
  /** A 64-bit signed integer column (Unix milliseconds do not fit in 32 bits). */
  readonly int: string;
  readonly blob: string;
  /**
   * A text column. PostgreSQL's default collation follows the database's locale; writ wants
   * byte order (SQLite's BINARY), so every ORDER BY on text sorts the same on both engines.
   */
  readonly text: string;
  /** What follows a CREATE TABLE's closing parenthesis (SQLite: STRICT typing). */
  readonly tableOptions: string;
  /** An increasing integer primary key the engine assigns. */
  readonly autoId: string;
  /** `x IN <textSet>`: a set of strings bound as one parameter (see `encodeTextSet`). */
  readonly textSet: string;
  /** The parameter value for `textSet`. */
  encodeTextSet(values: readonly string[]): string | readonly string[];
  /** `x IN <intSet>`: a set of 64-bit integers bound as one parameter (see `encodeIntSet`). */
  readonly intSet: string;
  /** The parameter value for `intSet`. */
  encodeIntSet(values: readonly number[]): string | readonly number[];
  /** A FROM item naming `alias` for each element of the JSON array in `column`. */
  jsonElements(column: string, alias: string): string;
  /** The text of member `key` of the JSON object element `alias`. */
  jsonMember(alias: string, key: string): string;
  /** The text of the JSON string element `alias` itself. */
  jsonText(alias: string): string;
  /** Renders the `?` placeholders of a shared statement in the engine's syntax. */
  placeholders(sql: string): string;
  /**
   * A statement that, run inside a transaction before an event row is given its sequence, holds
   * every other such transaction off until this one ends, so that events commit in sequence
   * order (a reader of "sequence > last" never passes one that commits later); absent when
   * transactions already run one at a time (SQLite).
   */
  readonly sequenceLock?: string;
  /**
   * A statement with one parameter (a channel name) that wakes the other replicas' change feeds
   * when the transaction it runs in commits, and never if it rolls back (PostgreSQL NOTIFY);
   * absent when there are no other replicas to wake (SQLite: the feed is in-process).
   */
  readonly notify?: string;
}

export const SQLITE: Dialect = {
  backend: 'sqlite',
  int: 'INTEGER',
  blob: 'BLOB',
  text: 'TEXT',
  tableOptions: ' STRICT',
  autoId: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  textSet: '(SELECT value FROM json_each(?))',
  encodeTextSet: (values) => JSON.stringify(values),
  intSet: '(SELECT value FROM json_each(?))',
  encodeIntSet: (values) => JSON.stringify(values),
  jsonElements: (column, alias) => `json_each(${column}) ${alias}`,
  jsonMember: (alias, key) => `json_extract(${alias}.value, '$.${key}')`,
  jsonText: (alias) => `${alias}.value`,
  placeholders: (sql) => sql,
};

export const POSTGRES: Dialect = {
  backend: 'postgres',
  int: 'BIGINT',
  blob: 'BYTEA',
  text: 'TEXT COLLATE "C"',
  tableOptions: '',
  autoId: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
  textSet: '(SELECT unnest(?::text[]))',
  encodeTextSet: (values) => values,
  intSet: '(SELECT unnest(?::bigint[]))',
  encodeIntSet: (values) => values,
  jsonElements: (column, alias) => `jsonb_array_elements(${column}::jsonb) AS ${alias} (value)`,
  jsonMember: (alias, key) => `(${alias}.value ->> '${key}')`,
  jsonText: (alias) => `(${alias}.value #>> '{}')`,
  placeholders: numberPlaceholders,
  // Transaction-scoped: released at COMMIT or ROLLBACK, so a crashed replica never holds it.
  sequenceLock: 'SELECT pg_advisory_xact_lock(2003986804, 1)',
  // Delivered at COMMIT (never on ROLLBACK), after the rows it announces are visible.
  notify: "SELECT pg_notify(?, '')",
};

/** `?` → `$1`, `$2`, ... outside string literals and quoted identifiers. */
function numberPlaceholders(sql: string): string {
  let out = '';
  let n = 0;
  let quote: string | undefined;
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = undefined;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === '?') {
      out += `$${++n}`;
    } else {
      out += ch;
    }
  }
  if (quote) throw new Error(`store: unterminated quote in statement: ${sql}`);
  return out;
}
