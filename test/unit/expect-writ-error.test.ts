/**
 * The refusal helper (test/helpers/errors.ts) itself: it must fail on every way a refusal can
 * be wrong, or the tests built on it could pass with the check they pin deleted.
 */
import { describe, expect, it } from 'vitest';
import { AttestationError, LimitError } from '../../src/errors.js';
import { expectWritError } from '../helpers/errors.js';

const refuse = () => {
  throw new AttestationError('ERR_PROTOCOL', 'attestation: handshake already finished');
};

describe('expectWritError', () => {
  it('passes on the code and a matching message, from a function, an async function or a promise, and returns the error', async () => {
    const e = await expectWritError(refuse, 'ERR_PROTOCOL', /already finished/);
    expect(e).toBeInstanceOf(AttestationError);
    await expectWritError(async () => refuse(), 'ERR_PROTOCOL', 'handshake already');
    await expectWritError(Promise.reject(new LimitError('limit: too many')), 'ERR_LIMIT_EXCEEDED');
  });

  it('fails when nothing is thrown (a deleted check)', async () => {
    await expect(expectWritError(() => 42, 'ERR_PROTOCOL')).rejects.toThrow(/nothing was thrown/);
    await expect(expectWritError(Promise.resolve(), 'ERR_PROTOCOL')).rejects.toThrow(/nothing was thrown/);
  });

  it('fails on another code, a message that does not match, or an error that is not a WritError', async () => {
    await expect(expectWritError(refuse, 'ERR_EVIDENCE_INVALID')).rejects.toThrow(/ERR_EVIDENCE_INVALID/);
    await expect(expectWritError(refuse, 'ERR_PROTOCOL', /never said/)).rejects.toThrow();
    await expect(expectWritError(refuse, 'ERR_PROTOCOL', 'never said')).rejects.toThrow();
    await expect(
      expectWritError(() => {
        throw new TypeError('x is undefined');
      }, 'ERR_PROTOCOL'),
    ).rejects.toThrow(/got TypeError: x is undefined/);
  });
});
