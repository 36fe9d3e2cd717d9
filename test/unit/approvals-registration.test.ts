/**
 * Passkey registration (src/issuance/approvals.ts begin/finishRegistration) over the real store,
 * CA and OIDC verifier, with software authenticators: an approver's ID token alone never adds a
 * passkey. The first needs a fresh sign-in (auth_time within approvals.registration_max_auth_age);
 * every later one an assertion, from a passkey the approver already has, over the SHA-256 of a
 * statement naming this registration. A registration challenge is used once, ceremonies are
 * bounded per approver and overall, the passkey cap holds under concurrency, and the audit
 * record is the owner's.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PASSKEY_REGISTRATION_TYP } from '../../src/approval/passkey-registration.js';
import { MAX_PASSKEYS_PER_APPROVER, MAX_PENDING_REGISTRATIONS_PER_APPROVER, type RegistrationBegun } from '../../src/issuance/approvals.js';
import { trustDomainId } from '../../src/spiffe/id.js';
import { APPROVAL_ORIGIN, APPROVAL_RP_ID, approvalsOver, issuanceWorld, TD, type World } from '../helpers/issuance.js';
import { SoftAuthenticator, type SoftAssertion } from '../helpers/soft-authenticator.js';

let w: World;
beforeEach(async () => {
  w = await issuanceWorld();
});
afterEach(async () => {
  await w.close();
});

const ISS = 'https://idp.example.com';
const b64 = (b: Buffer) => b.toString('base64url');
const now = () => w.clock.now().getTime();
const nowS = () => Math.floor(now() / 1000);
/** An ID token; `authAgeS` seconds since the sign-in, or null for none (auth_time absent). */
const token = (sub = 'bob', authAgeS: number | null = 0) => w.idp.tokenWith(now(), { sub, ...(authAgeS === null ? {} : { auth_time: nowS() - authAgeS }) });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
  return 'resolved';
}

const challengeOf = (b: RegistrationBegun) => Buffer.from((JSON.parse(b.options) as { challenge: string }).challenge, 'base64url');

function registrationJson(auth: SoftAuthenticator, challenge: Buffer, flags?: number): string {
  const c = auth.makeCredential({ challenge, origin: APPROVAL_ORIGIN, ...(flags !== undefined ? { flags } : {}) });
  return JSON.stringify({
    id: b64(c.credentialId),
    rawId: b64(c.credentialId),
    type: 'public-key',
    response: { attestationObject: b64(c.attestationObject), clientDataJSON: b64(c.clientDataJSON), transports: ['internal'] },
    clientExtensionResults: {},
  });
}

const assertionJson = (a: SoftAssertion) =>
  JSON.stringify({
    id: b64(a.credentialId),
    rawId: b64(a.credentialId),
    type: 'public-key',
    response: {
      authenticatorData: b64(a.authenticatorData),
      clientDataJSON: b64(a.clientDataJSON),
      signature: b64(a.signature),
      userHandle: b64(a.userHandle),
    },
    clientExtensionResults: {},
  });

/** The assertion an existing passkey makes to authorize the registration `b`. */
function authorize(by: SoftAuthenticator, b: RegistrationBegun, bend: { origin?: string; challenge?: Buffer; signCount?: number } = {}): string {
  const challenge = bend.challenge ?? Buffer.from((JSON.parse(b.authorization!.options) as { challenge: string }).challenge, 'base64url');
  return assertionJson(
    by.getAssertion({ challenge, origin: bend.origin ?? APPROVAL_ORIGIN, ...(bend.signCount !== undefined ? { signCount: bend.signCount } : {}) }),
  );
}

/** A first passkey, with a fresh sign-in. */
async function first(sub = 'bob'): Promise<SoftAuthenticator> {
  const t = token(sub);
  const auth = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
  const b = await w.approvals.beginRegistration(t);
  expect(b.authorization).toBeUndefined();
  await w.approvals.finishRegistration(t, registrationJson(auth, challengeOf(b)));
  return auth;
}

/** A further passkey, authorized by `by`. */
async function another(by: SoftAuthenticator, sub = 'bob', t = token(sub)): Promise<SoftAuthenticator> {
  const auth = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
  const b = await w.approvals.beginRegistration(t);
  await w.approvals.finishRegistration(t, registrationJson(auth, challengeOf(b)), authorize(by, b));
  return auth;
}

describe('the first passkey needs a fresh sign-in', () => {
  it('registers with a token whose auth_time is recent', async () => {
    await first();
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(1);
  });

  it.each([
    ['without auth_time', null],
    ['with a sign-in 6 minutes ago (past the 5-minute default)', 6 * 60],
    ['with auth_time in the future', -120],
  ])('refuses a token %s, at begin (ERR_APPROVAL_DENIED)', async (_what, age) => {
    expect(await code(w.approvals.beginRegistration(token('bob', age)))).toBe('ERR_APPROVAL_DENIED');
  });

  it('refuses, at finish, a token whose sign-in grew too old during the ceremony', async () => {
    const t0 = token('bob', 4 * 60);
    const b = await w.approvals.beginRegistration(t0);
    w.clock.advance(2 * 60_000);
    const late = w.idp.tokenWith(now(), { sub: 'bob', auth_time: nowS() - 6 * 60 });
    const auth = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(late, registrationJson(auth, challengeOf(b))))).toBe('ERR_APPROVAL_DENIED');
    expect(await w.store.listPasskeys(ISS, 'bob')).toEqual([]);
  });

  it('honours approvals.registration_max_auth_age', async () => {
    const strict = approvalsOver(w, { settings: { registrationMaxAuthAgeMs: 60_000 } });
    expect(await code(strict.beginRegistration(token('bob', 90)))).toBe('ERR_APPROVAL_DENIED');
    await expect(strict.beginRegistration(token('bob', 30))).resolves.toMatchObject({ options: expect.any(String) });
  });
});

describe('a further passkey needs an assertion of an existing one', () => {
  it('begin names the statement the existing passkey signs, and its SHA-256 is the challenge', async () => {
    const bobs = await first();
    const b = await w.approvals.beginRegistration(token());
    const statement = JSON.parse(b.authorization!.statement) as Record<string, unknown>;
    expect(statement).toEqual({
      typ: PASSKEY_REGISTRATION_TYP,
      v: 1,
      iss: trustDomainId(TD),
      owner: { iss: ISS, sub: 'bob' },
      challenge: b64(challengeOf(b)),
      rpId: APPROVAL_RP_ID,
      origin: APPROVAL_ORIGIN,
      exp: nowS() + 300,
    });
    const opts = JSON.parse(b.authorization!.options) as { challenge: string; userVerification: string; allowCredentials: { id: string }[] };
    expect(opts.challenge).toBe(b64(createHash('sha256').update(b.authorization!.statement).digest()));
    expect(opts.userVerification).toBe('required');
    expect(opts.allowCredentials.map((c) => c.id)).toEqual([b64(bobs.credentialId)]);
  });

  it('adds a passkey with the assertion, even with an old sign-in (the passkey is the proof)', async () => {
    const bobs = await first();
    w.clock.advance(60 * 60_000);
    await another(bobs, 'bob', token('bob', 3600));
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(2);
  });

  it('refuses a stolen token alone: no assertion (ERR_APPROVAL_DENIED), even with a fresh auth_time', async () => {
    await first();
    const t = token();
    const b = await w.approvals.beginRegistration(t);
    const thief = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(t, registrationJson(thief, challengeOf(b))))).toBe('ERR_APPROVAL_DENIED');
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(1);
  });

  it.each([
    ['by a passkey not registered to anyone', 'stranger'],
    ['by another approver’s passkey', 'dave'],
    ['over another challenge (an approval’s)', 'challenge'],
    ['on another origin', 'origin'],
    ['with a sign count that did not move', 'count'],
  ])('refuses an assertion %s (ERR_WEBAUTHN_INVALID)', async (_what, bend) => {
    const bobs = await first();
    const daves = await first('dave');
    // A counter that moves: bob's passkey authorized one registration already (its count is 1).
    if (bend === 'count') await another(bobs);
    const before = (await w.store.listPasskeys(ISS, 'bob')).length;
    const t = token();
    const b = await w.approvals.beginRegistration(t);
    const newKey = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    const assertion =
      bend === 'stranger'
        ? authorize(new SoftAuthenticator('ES256', APPROVAL_RP_ID), b)
        : bend === 'dave'
          ? authorize(daves, b)
          : bend === 'challenge'
            ? authorize(bobs, b, { challenge: createHash('sha256').update('an approval request').digest() })
            : bend === 'origin'
              ? authorize(bobs, b, { origin: 'https://evil.example' })
              : authorize(bobs, b, { signCount: 1 });
    expect(await code(w.approvals.finishRegistration(t, registrationJson(newKey, challengeOf(b)), assertion))).toBe('ERR_WEBAUTHN_INVALID');
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(before);
  });

  it('refuses an assertion made for another registration ceremony (a replay)', async () => {
    const bobs = await first();
    const t = token();
    const b1 = await w.approvals.beginRegistration(t);
    const b2 = await w.approvals.beginRegistration(t);
    const forB1 = authorize(bobs, b1);
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(t, registrationJson(k, challengeOf(b2)), forB1))).toBe('ERR_WEBAUTHN_INVALID');
  });

  it('refuses an authorizing assertion for a first passkey (nothing to authorize with)', async () => {
    const t = token();
    const b = await w.approvals.beginRegistration(t);
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(t, registrationJson(k, challengeOf(b)), '{"id":"x"}'))).toBe('ERR_APPROVAL_INVALID');
  });

  it('refuses a ceremony begun as a first passkey once another passkey was registered meanwhile', async () => {
    const t = token();
    const stale = await w.approvals.beginRegistration(t);
    await first();
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(t, registrationJson(k, challengeOf(stale))))).toBe('ERR_APPROVAL_DENIED');
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(1);
  });
});

describe('registration challenges', () => {
  it('a challenge is gone after a failed verification: the same ceremony cannot be retried', async () => {
    const t = token();
    const b = await w.approvals.beginRegistration(t);
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    // Without user verification: refused …
    expect(await code(w.approvals.finishRegistration(t, registrationJson(k, challengeOf(b), 0x41)))).toBe('ERR_WEBAUTHN_INVALID');
    // … and the challenge with it: a good response for it now finds nothing.
    expect(await code(w.approvals.finishRegistration(t, registrationJson(k, challengeOf(b))))).toBe('ERR_WEBAUTHN_INVALID');
    expect(await w.store.listPasskeys(ISS, 'bob')).toEqual([]);
  });

  it('a challenge presented by another approver is refused and spent', async () => {
    const b = await w.approvals.beginRegistration(token('bob'));
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(token('mallory'), registrationJson(k, challengeOf(b))))).toBe('ERR_WEBAUTHN_INVALID');
    expect(await w.store.listPasskeys(ISS, 'mallory')).toEqual([]);
  });

  it('a challenge past its 5 minutes is refused', async () => {
    const t0 = token();
    const b = await w.approvals.beginRegistration(t0);
    w.clock.advance(5 * 60_000 + 1);
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(token(), registrationJson(k, challengeOf(b))))).toBe('ERR_WEBAUTHN_INVALID');
  });

  it('one approver beginning many ceremonies drops only their own oldest, never another’s', async () => {
    const bobT = token('bob');
    const bobs = await w.approvals.beginRegistration(bobT);
    const mallory = token('mallory');
    const hers: RegistrationBegun[] = [];
    for (let i = 0; i < 50; i++) {
      w.clock.advance(1);
      hers.push(await w.approvals.beginRegistration(mallory));
    }
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    await w.approvals.finishRegistration(bobT, registrationJson(k, challengeOf(bobs)));
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(1);
    // Hers: only the last MAX_PENDING_REGISTRATIONS_PER_APPROVER are still live.
    const m = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    expect(await code(w.approvals.finishRegistration(mallory, registrationJson(m, challengeOf(hers[50 - MAX_PENDING_REGISTRATIONS_PER_APPROVER - 1]!))))).toBe(
      'ERR_WEBAUTHN_INVALID',
    );
    await w.approvals.finishRegistration(mallory, registrationJson(m, challengeOf(hers[49]!)));
  });

  it('past the overall bound a new ceremony is refused (ERR_LIMIT_EXCEEDED); the ones in flight still finish', async () => {
    const small = approvalsOver(w, { registrationLimits: { total: 3, perApprover: 2 } });
    const bobT = token('bob');
    const bobs = await small.beginRegistration(bobT);
    await small.beginRegistration(token('m1'));
    await small.beginRegistration(token('m2'));
    expect(await code(small.beginRegistration(token('m3')))).toBe('ERR_LIMIT_EXCEEDED');
    await small.finishRegistration(bobT, registrationJson(new SoftAuthenticator('ES256', APPROVAL_RP_ID), challengeOf(bobs)));
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(1);
    // Expired ceremonies make room again.
    w.clock.advance(5 * 60_000 + 1);
    await expect(small.beginRegistration(token('m3'))).resolves.toMatchObject({ options: expect.any(String) });
  });
});

describe('replicas share ceremonies (the store)', () => {
  it('a registration begun on one replica finishes on another, once', async () => {
    const replica = approvalsOver(w);
    const t = token();
    const b = await w.approvals.beginRegistration(t);
    const k = new SoftAuthenticator('ES256', APPROVAL_RP_ID);
    const response = registrationJson(k, challengeOf(b));
    await replica.finishRegistration(t, response);
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(1);
    // Used: neither replica takes it again.
    expect(await code(w.approvals.finishRegistration(t, response))).toBe('ERR_WEBAUTHN_INVALID');
    expect(await w.store.countPasskeyCeremonies(now())).toBe(0);
  });
});

describe('the passkey cap', () => {
  it(`holds at ${MAX_PASSKEYS_PER_APPROVER} when ceremonies that each passed it at begin finish (checked again in the transaction)`, async () => {
    const bobs = await first();
    // Fill up to one below the cap with recorded passkeys (their keys are never used here).
    for (let i = 1; i < MAX_PASSKEYS_PER_APPROVER - 1; i++)
      await w.store.putPasskey({ id: `filler-${i}`, ownerIss: ISS, ownerSub: 'bob', publicKey: bobs.coseKey, signCount: 0, createdAt: now(), usedAt: null });
    const t = token();
    const b1 = await w.approvals.beginRegistration(t);
    const b2 = await w.approvals.beginRegistration(t);
    await w.approvals.finishRegistration(t, registrationJson(new SoftAuthenticator('ES256', APPROVAL_RP_ID), challengeOf(b1)), authorize(bobs, b1));
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(MAX_PASSKEYS_PER_APPROVER);
    expect(
      await code(w.approvals.finishRegistration(t, registrationJson(new SoftAuthenticator('ES256', APPROVAL_RP_ID), challengeOf(b2)), authorize(bobs, b2))),
    ).toBe('ERR_APPROVAL_INVALID');
    expect(await w.store.listPasskeys(ISS, 'bob')).toHaveLength(MAX_PASSKEYS_PER_APPROVER);
    expect(await code(w.approvals.beginRegistration(t))).toBe('ERR_APPROVAL_INVALID');
  });
});

describe('the audit record', () => {
  it('passkey.registered names the owner as principal and actor, and how it was authorized', async () => {
    const bobs = await first();
    await another(bobs);
    const records = await w.store.findAuditRecords({ column: 'principal', value: `${ISS}#bob` }, 1_000_000, 100);
    const regs = records.map((r) => JSON.parse(r.canonical.toString('utf8')) as Record<string, unknown>).filter((r) => r.event === 'passkey.registered');
    expect(regs).toHaveLength(2);
    for (const r of regs) {
      expect(r.principal).toEqual({ iss: ISS, sub: 'bob' });
      expect(r.actor).toEqual({ kind: 'principal', iss: ISS, sub: 'bob' });
    }
    expect(regs.map((r) => r.reason)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^first passkey: sign-in at auth_time \d+$/), `authorized by passkey:${b64(bobs.credentialId)}`]),
    );
  });
});
