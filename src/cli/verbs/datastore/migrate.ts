/**
 * `writ datastore migrate --from sqlite:DIR --config FILE`: copies a SQLite data directory's
 * database into the PostgreSQL database of the configuration's `datastore:` (which must be
 * empty), keeping keys (sealed: keep the same key-encryption key), entries, grants, writs,
 * revocations with their sequences and the audit log. Run it with the server stopped.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadRawConfig } from '../../../config/config.js';
import { readInputFile } from '../../../config/files.js';
import { stringOption, UsageError } from '../../../config/options.js';
import { migrateToPostgres } from '../../../server/datastore.js';
import { serverSettings } from '../../../server/settings.js';
import { required, type Verb } from '../../verb.js';

export const datastoreMigrateVerb: Verb = {
  name: ['datastore', 'migrate'],
  summary: "copy a SQLite data directory's database into the (empty) PostgreSQL datastore of --config; run with the server stopped",
  required: ['from', 'config'],
  options: {
    from: { type: 'string', value: 'sqlite:DIR', help: 'the data directory (or the writ.db file) to copy from' },
    config: { type: 'string', value: 'FILE', help: "the replicas' configuration: its datastore (type postgres) is the target" },
  },
  async run({ values, env, catalog, io }) {
    const from = required(values, 'from').replace(/^sqlite:/, '');
    const file = from.endsWith('.db') ? resolve(from) : join(resolve(from), 'writ.db');
    if (!existsSync(file)) throw new UsageError(`--from: no SQLite database at ${file}`);
    const configFile = required(values, 'config');
    readInputFile(configFile, '--config');
    const { raw, problems } = loadRawConfig({ config: stringOption(values, 'config') }, env);
    const settings = serverSettings(raw, problems, catalog.evidence);
    if (settings.datastore.type !== 'postgres') throw new UsageError(`--config: its datastore must be type postgres (it is ${settings.datastore.type})`);
    const report = await migrateToPostgres(file, settings.datastore, env);
    const rows = report.tables.reduce((n, t) => n + t.rows, 0);
    io.out(`copied ${rows} rows of ${report.tables.length} tables at schema version ${report.schemaVersion}\n`);
    for (const t of report.tables) io.out(`  ${t.table.padEnd(20)} ${t.rows}\n`);
    return 0;
  },
};
