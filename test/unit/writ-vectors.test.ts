/** The binding-digest test vectors published in docs/writ-format.md, checked against writ and an independent Python implementation. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chainDigest } from '../../src/delegation/chain.js';
import { bindingDigest, bindingPreimage } from '../../src/writ/binding.js';
import { REPO_ROOT } from '../helpers/shared.js';

const doc = readFileSync(join(REPO_ROOT, 'docs', 'writ-format.md'), 'utf8');
const block = /```json writ-vectors\n([\s\S]*?)```/.exec(doc)![1]!;
const v = JSON.parse(block) as Record<string, string> & { grants: string[] };
const input = () => ({
  jkt: v.jkt,
  chainDigest: chainDigest(v.grants),
  policySnapshot: v.policySnapshot,
  taskId: v.taskId,
  nonce: Buffer.from(v.nonce, 'hex'),
});

describe('docs/writ-format.md test vectors', () => {
  it('writ reproduces the chain digest, the preimage and B byte for byte', () => {
    expect(chainDigest(v.grants).toString('hex')).toBe(v.chainDigest);
    expect(chainDigest([]).toString('hex')).toBe(v.emptyChainDigest);
    expect(bindingPreimage(input()).toString('hex')).toBe(v.preimage);
    expect(bindingDigest(input()).toString('hex')).toBe(v.binding);
  });

  it.each([
    ['another key', { jkt: 'MzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs' }],
    ['another task id', { taskId: 'triage-43' }],
    ['another snapshot', { policySnapshot: 'f'.repeat(64) }],
    ['another nonce', { nonce: Buffer.alloc(32) }],
    ['a reordered chain', { chainDigest: chainDigest([...v.grants].reverse()) }],
  ])('a mutated twin with %s gives another B', (_n, over) => {
    expect(bindingDigest({ ...input(), ...over }).toString('hex')).not.toBe(v.binding);
  });

  it('a non-canonical spelling of the same thumbprint (the 2 unused bits of its last character set) is refused, not hashed as the same key', () => {
    // "s" and "t" differ only in bits base64url decoding drops: both decode to the same 32 bytes.
    const twin = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xt';
    expect(Buffer.from(twin, 'base64url')).toEqual(Buffer.from(v.jkt, 'base64url'));
    expect(() => bindingDigest({ ...input(), jkt: twin })).toThrow(/canonical base64url/);
  });

  it('refuses inputs that are not the fixed sizes the encoding assumes, saying which', () => {
    const refused = (over: object) => {
      try {
        bindingPreimage({ ...input(), ...over });
      } catch (e) {
        return e as { code: string; message: string };
      }
      throw new Error('accepted');
    };
    expect(refused({ jkt: 'not-a-thumbprint' })).toMatchObject({
      code: 'ERR_WRIT_INVALID',
      message: 'writ: key thumbprint must be 43 canonical base64url characters',
    });
    expect(refused({ chainDigest: Buffer.alloc(31) })).toMatchObject({ code: 'ERR_WRIT_INVALID', message: 'writ: grant-chain digest must be 32 bytes' });
    expect(refused({ nonce: Buffer.alloc(33) })).toMatchObject({ code: 'ERR_WRIT_INVALID', message: 'writ: nonce must be 32 bytes' });
    const snap = 'writ: policy snapshot digest must be 64 lower-case hex characters';
    for (const policySnapshot of ['F'.repeat(64), 'f'.repeat(63), `x${'f'.repeat(64)}`, `${'f'.repeat(64)}x`, `${'f'.repeat(64)}\n`]) {
      expect(refused({ policySnapshot }), policySnapshot).toMatchObject({ code: 'ERR_WRIT_INVALID', message: snap });
    }
  });

  const py = spawnSync('/usr/bin/python3', ['-c', 'pass']).status === 0;
  it.skipIf(!py && !process.env.CI)('an independent Python implementation of the text agrees', () => {
    const out = execFileSync('/usr/bin/python3', [join(REPO_ROOT, 'test', 'interop', 'binding.py'), block], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(out).toEqual([v.chainDigest, v.binding]);
  });
});
