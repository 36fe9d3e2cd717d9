/**
 * The `htm` strings agents' proofs bind to for issuer RPCs (src/writ/proof-methods.ts), written
 * out here by hand as an independent check: agents and issuers of other versions sign and check
 * exactly these, so a change to one is a wire change, not a refactor.
 */
import { describe, expect, it } from 'vitest';
import { REVOKE_METHOD, escalateMethod, getApprovalMethod, revokeMethod, watchApprovalMethod } from '../../src/writ/proof-methods.js';

describe('proof methods', () => {
  it('are the RPC name, a space, and what the call acts on', () => {
    expect(REVOKE_METHOD).toBe('writ.v1.RevocationService/Revoke');
    expect(revokeMethod('grant', 'abc')).toBe('writ.v1.RevocationService/Revoke grant abc');
    expect(escalateMethod('deploy:prod', 'svc://x')).toBe('writ.v1.ApprovalService/Escalate deploy:prod=svc://x');
    expect(getApprovalMethod('ap-1')).toBe('writ.v1.ApprovalService/GetApproval ap-1');
    expect(watchApprovalMethod('ap-1')).toBe('writ.v1.ApprovalService/WatchApproval ap-1');
  });
});
