/** The audit record: one shape, one canonical encoding, actor and principal apart, no secrets. */
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newJoinToken } from '../../src/attestation/join-token/join-token.js';
import { canonicalBytes } from '../../src/audit/jcs.js';
import { type AuditRecord, encodeRecord, MAX_AUDIT_RECORD_BYTES, parseRecord } from '../../src/audit/record.js';
import { AuditError } from '../../src/errors.js';

const RECORD: AuditRecord = {
  v: 1,
  seq: 7,
  at: 1_700_000_000_000,
  event: 'handshake.issued',
  actor: { kind: 'agent', spiffeId: 'spiffe://example.org/agent/triage', jkt: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' },
  principal: { iss: 'https://idp.example.org', sub: 'alice' },
  task: 'triage-42',
  lineage: ['g-root', 'g-hop1'],
  action: null,
  resource: null,
  decision: 'allow',
  reason: null,
  policies: ['permit-triage'],
  snapshot: 'a'.repeat(64),
  evidence: 'b'.repeat(64),
  created: ['writ-1', 'svid-01ab'],
};

function refused(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(AuditError);
    expect((e as AuditError).code).toBe('ERR_AUDIT_RECORD_INVALID');
    return (e as Error).message;
  }
  throw new Error('expected ERR_AUDIT_RECORD_INVALID');
}

describe('audit record encoding', () => {
  it('encodes to sorted, whitespace-free JSON and parses back to the same record', () => {
    const bytes = encodeRecord(RECORD);
    expect(bytes.toString()).toMatch(
      /^\{"action":null,"actor":\{"jkt":"NzbL.*","kind":"agent","spiffeId":"spiffe:\/\/example\.org\/agent\/triage"\},"at":1700000000000,/,
    );
    expect(parseRecord(bytes)).toEqual(RECORD);
  });

  it('keeps actor and principal apart, also when the principal acts directly', () => {
    const direct = { ...RECORD, actor: { kind: 'principal', iss: 'https://idp.example.org', sub: 'alice' } as const };
    const j = JSON.parse(encodeRecord(direct).toString());
    expect(j.actor).toEqual({ iss: 'https://idp.example.org', kind: 'principal', sub: 'alice' });
    expect(j.principal).toEqual({ iss: 'https://idp.example.org', sub: 'alice' });
  });

  it.each([
    ['a missing field', (r: Record<string, unknown>) => delete r.task],
    ['an extra field', (r: Record<string, unknown>) => (r.token = 'x')],
    ['an unknown event', (r: Record<string, unknown>) => (r.event = 'handshake.maybe')],
    ['a fractional time', (r: Record<string, unknown>) => (r.at = 1.5)],
    ['a negative seq', (r: Record<string, unknown>) => (r.seq = -1)],
    ['a digest in upper case', (r: Record<string, unknown>) => (r.snapshot = 'A'.repeat(64))],
    ['an actor with a field of another kind', (r: Record<string, unknown>) => (r.actor = { kind: 'operator', id: 'op', sub: 'alice' })],
    ['an actor of no known kind', (r: Record<string, unknown>) => (r.actor = { kind: 'root' })],
    ['a principal without sub', (r: Record<string, unknown>) => (r.principal = { iss: 'https://idp.example.org' })],
    ['an empty task string (absent is null)', (r: Record<string, unknown>) => (r.task = '')],
    ['a lineage of 65 grants', (r: Record<string, unknown>) => (r.lineage = Array.from({ length: 65 }, (_, i) => `g${i}`))],
    ['a decision outside allow/deny/escalate', (r: Record<string, unknown>) => (r.decision = 'maybe')],
    ['version 2', (r: Record<string, unknown>) => (r.v = 2)],
  ])('refuses %s', (_n, mutate) => {
    const r = structuredClone(RECORD) as unknown as Record<string, unknown>;
    mutate(r);
    refused(() => encodeRecord(r as unknown as AuditRecord));
  });

  // encodeRecord writes the canonical text with JSON.stringify over a sorted copy; jcs.ts is the reference.
  it('writes exactly the bytes of RFC 8785 (jcs.ts) for every record, escapes and non-ASCII included', () => {
    // Any code point (never a lone surrogate: refused, tested below), with the characters JSON escapes made common.
    const unit = fc.oneof(
      fc.constantFrom('"', '\\', '\b', '\f', '\n', '\r', '\t', '\u0000', '\u001f', '\u007f', '\u2028', '😀'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    );
    const text = fc.string({ unit, minLength: 1, maxLength: 24 });
    const opt = fc.option(text, { nil: null });
    const digest = fc.option(fc.stringMatching(/^[0-9a-f]{64}$/), { nil: null });
    const actor = fc.oneof(
      fc.record({ kind: fc.constant('agent' as const), spiffeId: text, jkt: text }),
      fc.record({ kind: fc.constant('operator' as const), id: text }),
      fc.record({ kind: fc.constant('principal' as const), iss: text, sub: text }),
      fc.constant({ kind: 'issuer' as const }),
    );
    const record = fc.record({
      v: fc.constant(1 as const),
      seq: fc.nat({ max: 2 ** 50 }),
      at: fc.maxSafeNat(),
      event: fc.constantFrom('handshake.issued' as const, 'revocation' as const, 'approval.denied' as const),
      actor,
      principal: fc.option(fc.record({ iss: text, sub: text }), { nil: null }),
      task: opt,
      lineage: fc.array(text, { maxLength: 4 }),
      action: opt,
      resource: opt,
      decision: fc.constantFrom(null, 'allow' as const, 'deny' as const, 'escalate' as const),
      reason: opt,
      policies: fc.array(text, { maxLength: 4 }),
      snapshot: digest,
      evidence: digest,
      created: fc.array(text, { maxLength: 4 }),
    });
    fc.assert(
      fc.property(record, (r) => {
        let bytes: Buffer;
        try {
          bytes = encodeRecord(r);
        } catch (e) {
          // Only the secret guard refuses a record of this shape.
          expect((e as Error).message).toMatch(/looks like a secret/);
          return;
        }
        expect(bytes.equals(canonicalBytes(r))).toBe(true);
        expect(parseRecord(bytes)).toEqual(r);
      }),
      { numRuns: 300 },
    );
    // The escapes RFC 8785 §3.2.2.2 names, a control character without a short form, DEL, U+2028, an astral character.
    const odd = { ...RECORD, reason: 'a"b\\c\b\f\n\r\t\u0001\u001f\u007f\u2028 é 😀' };
    expect(encodeRecord(odd).equals(canonicalBytes(odd))).toBe(true);
    expect(encodeRecord(odd).toString()).toContain('"reason":"a\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\u007f\u2028 é 😀"');
  });

  it.each([
    ['a high surrogate alone', '\ud800'],
    ['a low surrogate alone', 'x\udc00'],
    ['two high surrogates', '\ud800\ud800'],
  ])('refuses a string with %s (RFC 8785 has no form for it)', (_n, s) => {
    expect(refused(() => encodeRecord({ ...RECORD, reason: s }))).toMatch(/reason holds a lone surrogate/);
    expect(refused(() => encodeRecord({ ...RECORD, lineage: ['g', s] }))).toMatch(/lineage\[1\] holds a lone surrogate/);
  });

  describe('secrets never appear', () => {
    const { token } = newJoinToken(new Date(0), 60_000);
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

    it.each([
      ['a join token as the reason', { reason: `bad token ${token}` }],
      ['a join token among created ids', { created: [token] }],
      ['a join token as the operator id', { actor: { kind: 'operator', id: token } }],
      ['a PEM private key as the resource', { resource: pem.slice(0, 200) }],
    ])('refuses %s', (_n, patch) => {
      expect(refused(() => encodeRecord({ ...RECORD, ...patch } as AuditRecord))).toMatch(/looks like a secret/);
    });

    it('the token id alone (not secret) is fine', () => {
      const id = token.split('.')[0]!;
      expect(encodeRecord({ ...RECORD, created: [id] }).toString()).toContain(id);
    });
  });

  describe('parsing untrusted bytes', () => {
    const bytes = encodeRecord(RECORD);
    it.each([
      ['whitespace added', Buffer.from(JSON.stringify(JSON.parse(bytes.toString()), null, 1))],
      ['members out of order', Buffer.from(JSON.stringify({ v: 1, ...JSON.parse(bytes.toString()) }))],
      ['a duplicate member', Buffer.from(bytes.toString().replace('{"action":null,', '{"action":null,"action":null,'))],
      ['invalid UTF-8', Buffer.concat([bytes.subarray(0, 10), Buffer.of(0xff), bytes.subarray(10)])],
      ['a trailing newline', Buffer.concat([bytes, Buffer.from('\n')])],
      ['a number written 7.0', Buffer.from(bytes.toString().replace('"seq":7', '"seq":7.0'))],
      ['an escaped letter', Buffer.from(bytes.toString().replace('triage-42', 'triage\\u002d42'))],
      ['too large', Buffer.alloc(MAX_AUDIT_RECORD_BYTES + 1, 0x20)],
    ])('refuses %s', (_n, b) => {
      refused(() => parseRecord(b));
    });

    it('every single-byte flip is refused or parses to a different record, never crashes', () => {
      for (let i = 0; i < bytes.length; i++) {
        const b = Buffer.from(bytes);
        b[i]! ^= 0x01;
        try {
          expect(parseRecord(b)).not.toEqual(RECORD);
        } catch (e) {
          expect(e).toBeInstanceOf(AuditError);
        }
      }
    });
  });
});
