/** `writ audit show SEQ [--json]` against a real server's admin socket: one record, pretty or its exact canonical bytes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leafHash } from '../../src/audit/merkle.js';
import { runCli } from '../helpers/cli.js';
import { startServer } from '../helpers/server.js';

let w: Awaited<ReturnType<typeof startServer>>;
let seq: number;
beforeAll(async () => {
  w = await startServer();
  const entry = await w.server.core.admin.createEntry({
    spiffeId: 'spiffe://example.org/agent/show',
    selectors: [{ type: 'join_token', value: 'show-1' }],
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    scopeCeiling: [],
    hint: '',
  });
  seq = (await w.server.store.getAuditSize()) - 1;
  expect(entry.id).toBeTruthy();
});
afterAll(() => w.stop());

describe('writ audit show', () => {
  const admin = () => ['--admin-socket', w.adminSocket];

  it('prints every field of the record on its own line, actor and principal apart, and its leaf hash', async () => {
    const r = await runCli(['audit', 'show', String(seq), ...admin()]);
    expect(r).toMatchObject({ code: 0, err: '' });
    const row = (await w.server.store.getAuditRecord(seq))!;
    expect(r.out).toContain(`  seq        ${seq}\n`);
    expect(r.out).toContain('  event      entry.created\n');
    expect(r.out).toContain('  actor      operator admin\n');
    expect(r.out).toContain('  principal  -\n');
    expect(r.out).toContain(`  leaf hash  ${leafHash(row.canonical).toString('hex')}\n`);
    expect(r.out.split('\n').filter(Boolean)).toHaveLength(16);
  });

  it('--json prints exactly the canonical bytes (the Merkle leaf), one line', async () => {
    const r = await runCli(['audit', 'show', String(seq), '--json', ...admin()]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`${(await w.server.store.getAuditRecord(seq))!.canonical.toString('utf8')}\n`);
    expect(JSON.parse(r.out)).toMatchObject({ seq, event: 'entry.created', actor: { kind: 'operator', id: 'admin' }, principal: null });
  });

  it.each([['-1'], ['01'], ['x'], ['']])('refuses SEQ %j as a usage error', async (s) => {
    expect((await runCli(['audit', 'show', s, ...admin()])).code).toBe(2);
  });

  it('a record past the end of the log is an error naming it', async () => {
    const r = await runCli(['audit', 'show', String(seq + 1000), ...admin()]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(new RegExp(`no record ${seq + 1000}`));
  });
});
