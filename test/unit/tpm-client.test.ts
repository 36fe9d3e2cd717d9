import { describe, expect, it } from 'vitest';
import { Tpm, describeRc, MAX_RETRIES } from '../../src/tpm/client.js';
import { TPM_ALG, TPM_RC } from '../../src/tpm/constants.js';
import { TpmError } from '../../src/errors.js';
import { ScriptedTransport, response } from '../fakes/tpm-transport.js';

describe('TPM command client', () => {
  it('marshals TPM2_PCR_Extend exactly (Part 3 §22.2: handle, password session, TPML_DIGEST_VALUES)', async () => {
    // The response: parameterSize 0 (then an auth area the client does not need).
    const t = new ScriptedTransport([response(0, Buffer.alloc(4))]);
    const tpm = new Tpm(t);
    await tpm.pcrExtend(23, TPM_ALG.SHA256, Buffer.alloc(32, 0xab));
    const cmd = t.sent[0]!;
    expect(cmd.readUInt16BE(0)).toBe(0x8002); // TPM_ST_SESSIONS
    expect(cmd.readUInt32BE(2)).toBe(cmd.length);
    expect(cmd.readUInt32BE(6)).toBe(0x182); // TPM_CC_PCR_Extend
    expect(cmd.readUInt32BE(10)).toBe(23); // pcrHandle
    expect(cmd.subarray(14, 27).toString('hex')).toBe('00000009' + '40000009' + '0000' + '01' + '0000'); // one password session
    expect(cmd.subarray(27, 33).toString('hex')).toBe('00000001000b'); // one digest, SHA-256
    expect(cmd.subarray(33)).toEqual(Buffer.alloc(32, 0xab));
  });

  it('retries transient response codes (TPM_RC_RETRY 0x922, YIELDED, TESTING) and then succeeds', async () => {
    const t = new ScriptedTransport([response(TPM_RC.RETRY), response(TPM_RC.YIELDED), response(TPM_RC.TESTING), response(0)]);
    await new Tpm(t).shutdown();
    expect(t.sent.length).toBe(4);
  });

  it('gives up after a bounded number of retries', async () => {
    const t = new ScriptedTransport(Array.from({ length: MAX_RETRIES + 1 }, () => response(TPM_RC.RETRY)));
    const err = await new Tpm(t).shutdown().catch((e) => e);
    expect(err).toBeInstanceOf(TpmError);
    expect((err as TpmError).rc).toBe(TPM_RC.RETRY);
    expect(t.sent.length).toBe(MAX_RETRIES + 1);
  });

  it('explains lockout and parameter errors', async () => {
    const err = await new Tpm(new ScriptedTransport([response(TPM_RC.LOCKOUT)])).shutdown().catch((e) => e);
    expect((err as TpmError).code).toBe('ERR_TPM_COMMAND');
    expect((err as Error).message).toBe(
      'tpm: Shutdown failed: TPM_RC_LOCKOUT: the TPM is in dictionary-attack lockout; wait or reset the lockout (tpm2_dictionarylockout -c)',
    );
    expect(describeRc(0x1d5)).toBe('TPM_RC_SIZE (parameter 1)');
    expect(describeRc(0x98e)).toBe('TPM_RC_AUTH_FAIL (session 1)');
  });

  it('a malformed response is a transport error, not a crash', async () => {
    const err = await new Tpm(new ScriptedTransport([Buffer.from('8001000000', 'hex')])).shutdown().catch((e) => e);
    expect(err).toBeInstanceOf(TpmError);
    expect((err as TpmError).code).toBe('ERR_TPM_TRANSPORT');
  });
});
