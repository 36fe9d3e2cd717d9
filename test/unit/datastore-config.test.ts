/**
 * The `datastore:` key: SQLite in the data directory by default; PostgreSQL with a connection
 * string that carries no password (it comes from a file or an environment variable, read at
 * start), pool size, statement timeout and TLS; every mistake reported at once, and no message
 * or setting ever holds the password.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { DatastoreSettings } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { datastorePassword, describePostgres } from '../../src/server/datastore.js';
import { serverSettings } from '../../src/server/settings.js';
import { tmpDir } from '../helpers/tmp.js';

const SECRET = 'hunter2-Very-Secret';
const build = (datastore: unknown) => serverSettings({ data_dir: '/var/lib/writ', datastore });
const problems = (datastore: unknown): string[] => {
  try {
    build(datastore);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
};
type Pg = Extract<DatastoreSettings, { type: 'postgres' }>;

describe('datastore configuration', () => {
  it('defaults to SQLite in the data directory, as before', () => {
    expect(serverSettings({ data_dir: '/var/lib/writ' }).datastore).toEqual({ type: 'sqlite', path: '/var/lib/writ/writ.db' });
    expect(build({ type: 'sqlite', path: '/srv/writ.db' }).datastore).toEqual({ type: 'sqlite', path: '/srv/writ.db' });
  });

  it('reads PostgreSQL settings, with defaults for the pool and the statement timeout', () => {
    expect(build({ type: 'postgres', connection_string: 'postgres://writ@db.internal:5432/writ', password_env: 'WRIT_DB_PASSWORD' }).datastore).toEqual({
      type: 'postgres',
      connectionString: 'postgres://writ@db.internal:5432/writ',
      passwordEnv: 'WRIT_DB_PASSWORD',
      poolSize: 10,
      statementTimeoutMs: 5_000,
    });
    const s = build({
      type: 'postgres',
      connection_string: 'postgresql://writ@db/writ',
      password_file: '/run/secrets/db',
      schema: 'writ_prod',
      pool_size: 25,
      statement_timeout: '2s',
      tls: { ca_file: '/etc/writ/db-ca.pem', server_name: 'db.internal' },
    }).datastore;
    expect(s).toMatchObject({
      passwordFile: '/run/secrets/db',
      schema: 'writ_prod',
      poolSize: 25,
      statementTimeoutMs: 2_000,
      tls: { caFile: '/etc/writ/db-ca.pem', serverName: 'db.internal' },
    });
  });

  it.each([
    [{ type: 'mysql' }, /datastore.type must be sqlite or postgres/],
    [{ type: 'postgres' }, /datastore.connection_string is required/],
    [{ type: 'postgres', connection_string: 'db.internal:5432' }, /datastore.connection_string (is not a URL|must be a postgres)/],
    [{ type: 'postgres', connection_string: 'mysql://db/writ' }, /must be a postgres:\/\/ URL/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ?sslmode=disable' }, /must not carry ssl parameters: use datastore.tls/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', password_file: '/a', password_env: 'B' }, /password_file or password_env, not both/],
    [
      { type: 'postgres', connection_string: 'postgres://writ@db/writ', password_env: 'not a name' },
      /password_env must be the name of an environment variable/,
    ],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', pool_size: 0 }, /datastore.pool_size must be an integer 1..200/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', statement_timeout: 'soon' }, /datastore.statement_timeout/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', schema: 'Bad-Name' }, /datastore.schema must match/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', tls: { cert_file: '/c' } }, /cert_file and key_file go together/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', tls: { verify: false } }, /unknown key datastore.tls.verify/],
    [{ type: 'postgres', connection_string: 'postgres://writ@db/writ', path: '/x' }, /datastore.path applies to type sqlite/],
    [{ type: 'sqlite', connection_string: 'postgres://writ@db/writ' }, /datastore.connection_string applies to type postgres, not sqlite/],
    [{ kind: 'postgres' }, /unknown key datastore.kind/],
  ])('refuses %j', (datastore, why) => {
    expect(problems(datastore).join('\n')).toMatch(why);
  });

  it('reports every datastore problem at once', () => {
    expect(problems({ type: 'postgres', pool_size: -1, statement_timeout: 'x', schema: '1' })).toHaveLength(4);
  });

  it('refuses a password in the connection string without quoting it', () => {
    for (const cs of [`postgres://writ:${SECRET}@db/writ`, `postgres://writ@db/writ?password=${SECRET}`]) {
      const p = problems({ type: 'postgres', connection_string: cs }).join('\n');
      expect(p).toMatch(/must not carry a password: put it in datastore.password_file or datastore.password_env/);
      expect(p).not.toContain(SECRET);
    }
  });

  it('reads the password from its file (one line, the newline dropped) or its variable, and the settings never hold it', () => {
    const file = join(tmpDir(), 'db-password');
    writeFileSync(file, `${SECRET}\n`, { mode: 0o600 });
    const s = build({ type: 'postgres', connection_string: 'postgres://writ@db/writ', password_file: file }).datastore as Pg;
    expect(datastorePassword(s, {})).toBe(SECRET);
    expect(inspect(s, { depth: 10 })).not.toContain(SECRET);
    const e = build({ type: 'postgres', connection_string: 'postgres://writ@db/writ', password_env: 'WRIT_DB_PASSWORD' }).datastore as Pg;
    expect(datastorePassword(e, { WRIT_DB_PASSWORD: SECRET })).toBe(SECRET);
    expect(datastorePassword(build({ type: 'postgres', connection_string: 'postgres://writ@db/writ' }).datastore as Pg, {})).toBeUndefined();
  });

  it('says which file or variable holds no password, never a value', () => {
    const e = build({ type: 'postgres', connection_string: 'postgres://writ@db/writ', password_env: 'WRIT_DB_PASSWORD' }).datastore as Pg;
    expect(() => datastorePassword(e, {})).toThrow(/the environment variable WRIT_DB_PASSWORD is not set/);
    const missing = build({ type: 'postgres', connection_string: 'postgres://writ@db/writ', password_file: '/nonexistent/db-password' }).datastore as Pg;
    expect(() => datastorePassword(missing, {})).toThrow(/datastore.password_file: cannot read \/nonexistent\/db-password: no such file/);
    const twoLines = join(tmpDir(), 'two-lines');
    writeFileSync(twoLines, `${SECRET}\nmore\n`);
    const bad = build({ type: 'postgres', connection_string: 'postgres://writ@db/writ', password_file: twoLines }).datastore as Pg;
    let msg = '';
    try {
      datastorePassword(bad, {});
    } catch (err) {
      msg = inspect(err);
    }
    expect(msg).toMatch(/must hold the password on one line/);
    expect(msg).not.toContain(SECRET);
  });

  it('describes a PostgreSQL datastore by host, port, database and schema only', () => {
    expect(describePostgres('postgres://writ@db.internal:6432/writ', 'prod')).toBe('postgres db.internal:6432/writ schema prod');
    expect(describePostgres(`postgres://writ:${SECRET}@db/writ`)).toBe('postgres db/writ');
  });
});
