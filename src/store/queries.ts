/**
 * Every statement the store runs, once, in SQL both engines read the same way: upserts are
 * `INSERT ... ON CONFLICT`, the one set-valued parameter goes through `Dialect.textSet`, and
 * placeholders are `?`, rendered per dialect. Rendered once per store; drivers cache the
 * prepared form by `name`.
 */
import { CA_KEYS, ENTRIES, GRANTS, ISSUED_SVIDS, JOIN_TOKENS, POLICY_DECISIONS, POLICY_SNAPSHOTS, type Table, TPM_ENDORSEMENTS, WRITS } from './codecs.js';
import type { Dialect } from './dialect.js';

export interface Statement {
  /** Stable and unique per statement text (PostgreSQL prepares by name). */
  readonly name: string;
  readonly text: string;
}

const cols = (t: Table) => t.columns.join(', ');
const insert = (t: Table) => `INSERT INTO ${t.name} (${cols(t)}) VALUES (${t.columns.map(() => '?').join(', ')})`;
const select = (t: Table) => `SELECT ${cols(t)} FROM ${t.name}`;
/** `col = excluded.col` for every column but the conflict key. */
const replaceAll = (t: Table, key: string) =>
  t.columns
    .filter((c) => c !== key)
    .map((c) => `${c} = excluded.${c}`)
    .join(', ');

export function buildQueries(d: Dialect) {
  const texts = {
    insertEntry: insert(ENTRIES),
    getEntry: `${select(ENTRIES)} WHERE id = ?`,
    listEntries: `${select(ENTRIES)} ORDER BY created_at, id`,
    insertSelector: 'INSERT INTO entry_selectors (entry_id, selector) VALUES (?, ?)',
    entriesBySelectors: `${select(ENTRIES)} WHERE id IN (SELECT entry_id FROM entry_selectors WHERE selector IN ${d.textSet}) ORDER BY created_at, id`,
    entryExists: 'SELECT 1 AS found FROM entries WHERE spiffe_id = ? AND selectors_key = ?',
    deleteEntry: 'DELETE FROM entries WHERE id = ?',

    insertToken: insert(JOIN_TOKENS),
    getToken: `${select(JOIN_TOKENS)} WHERE id = ?`,
    // One statement: the row lock (PostgreSQL) or the write lock (SQLite) makes it once-only.
    consumeToken: 'UPDATE join_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?',
    pruneTokens: 'DELETE FROM join_tokens WHERE expires_at < ?',

    listKeys: `${select(CA_KEYS)} ORDER BY not_before, id`,
    putKey: insert(CA_KEYS),
    setKeyState: 'UPDATE ca_keys SET state = ? WHERE id = ?',
    deleteKey: 'DELETE FROM ca_keys WHERE id = ?',

    getSeq: "SELECT value FROM meta WHERE key = 'bundle_sequence'",
    bumpSeq: `UPDATE meta SET value = CAST(CAST(value AS ${d.int}) + 1 AS TEXT) WHERE key = 'bundle_sequence' RETURNING value`,

    insertIssued: insert(ISSUED_SVIDS),
    countIssued: 'SELECT COUNT(*) AS n FROM issued_svids',
    pruneIssued: 'DELETE FROM issued_svids WHERE expires_at < ?',

    getTpm: `${select(TPM_ENDORSEMENTS)} WHERE ek_hash = ?`,
    putTpm: `${insert(TPM_ENDORSEMENTS)} ON CONFLICT (ek_hash) DO UPDATE SET ${replaceAll(TPM_ENDORSEMENTS, 'ek_hash')}`,

    // Snapshots are immutable and content-addressed: the first one stored under a digest stays.
    putSnapshot: `${insert(POLICY_SNAPSHOTS)} ON CONFLICT (digest) DO NOTHING`,
    getSnapshot: `${select(POLICY_SNAPSHOTS)} WHERE digest = ?`,
    listSnapshots: `${select(POLICY_SNAPSHOTS)} ORDER BY created_at DESC, digest`,
    setActive:
      'INSERT INTO policy_active (id, digest, activated_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, activated_at = excluded.activated_at',
    getActive: 'SELECT digest, activated_at FROM policy_active WHERE id = 1',

    putGrant: insert(GRANTS),
    getGrant: `${select(GRANTS)} WHERE jti = ?`,
    putWrit: insert(WRITS),
    getWrit: `${select(WRITS)} WHERE jti = ?`,
    putDecision: insert(POLICY_DECISIONS),
    listDecisions: `${select(POLICY_DECISIONS)} ORDER BY id DESC LIMIT ?`,
  };
  return Object.fromEntries(Object.entries(texts).map(([name, text]) => [name, { name: `writ_${name}`, text: d.placeholders(text) }])) as {
    readonly [K in keyof typeof texts]: Statement;
  };
}

export type Queries = ReturnType<typeof buildQueries>;
