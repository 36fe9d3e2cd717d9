/**
 * An in-memory issuer for writ tests: it signs root grants and writs with a real ES256 key,
 * exactly as the server does (same library calls), so verifier tests can build chains and
 * writs, including ones the real issuer would refuse to make.
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { jwkThumbprint, publicJwk, sha256b64url, signJws } from '../../src/jose/jws.js';
import { chainDigest } from '../../src/delegation/chain.js';
import { GRANT_TYP, delegateGrant, newGrantId, parseGrant, type GrantClaims } from '../../src/delegation/grant.js';
import type { Permission } from '../../src/delegation/scope.js';
import { bindingDigest } from '../../src/writ/binding.js';
import { stepUpListDigest } from '../../src/delegation/step-up.js';
import { WRIT_TYP, type ActClaim, type WritClaims } from '../../src/writ/writ.js';
import type { WritTrust } from '../../src/writ/verify.js';

export const SNAP = 'a'.repeat(64);

export interface Agent {
  readonly key: KeyObject;
  readonly jkt: string;
  readonly spiffeId: string;
}

export function agent(name: string, td = 'example.org'): Agent {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  return { key, jkt: jwkThumbprint(createPublicKey(key)), spiffeId: `spiffe://${td}/agent/${name}` };
}

export class FakeIssuer {
  readonly key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  readonly kid = `writ-${randomBytes(4).toString('hex')}`;
  readonly issuer: string;
  constructor(readonly trustDomain = 'example.org') {
    this.issuer = `spiffe://${trustDomain}`;
  }

  get trust(): WritTrust {
    return { issuer: this.issuer, writKeys: new Map([[this.kid, createPublicKey(this.key)]]) };
  }

  rootGrant(
    to: Agent,
    o: {
      now: number;
      ttl?: number;
      scope?: Permission[];
      boundaries?: Permission[];
      escalate?: Permission[];
      maxDepth?: number;
      taskId?: string;
      override?: Partial<GrantClaims>;
      jti?: string;
    },
  ): string {
    const jti = o.jti ?? newGrantId();
    const exp = o.now + (o.ttl ?? 3600);
    const claims: GrantClaims = {
      iss: this.issuer,
      jti,
      iat: o.now,
      exp,
      rid: jti,
      depth: 0,
      max_depth: o.maxDepth ?? 3,
      task: { id: o.taskId ?? 'task-1', goal: 'triage open issues', exp },
      principal: { iss: 'https://idp.example.com', sub: 'alice' },
      dlg: { jkt: to.jkt },
      scope: o.scope ?? [{ action: 'repo:*', resource: 'repo://acme/*' }],
      boundaries: o.boundaries ?? [{ action: '*', resource: 'repo://acme/secrets*' }],
      escalate: o.escalate ?? [{ action: 'repo:delete', resource: '*' }],
      pol: { snap: SNAP, decision: 'allow', policies: ['eng-may-delegate'] },
      ...o.override,
    };
    // Signed in one step with the key itself (the issuer signs through its custody's async signer; the bytes are the same).
    return signJws({ typ: GRANT_TYP, kid: this.kid }, { ...claims }, this.key);
  }

  /** A writ for `holder` over `grants`, consistent in every field unless `override` says otherwise. */
  writ(
    holder: Agent,
    grants: string[],
    o: {
      now: number;
      ttl?: number;
      nonce?: Buffer;
      ev?: Buffer;
      type?: string;
      sel?: string[];
      override?: Partial<WritClaims>;
      polIat?: number;
      /** Step-up grants to carry (bound into B as writ-binding-v2); `bindStepUp` binds another list instead. */
      stepup?: string[];
      bindStepUp?: string[] | null;
    },
  ): { writ: string; claims: WritClaims; binding: Buffer } {
    const parsed = grants.map(parseGrant);
    const root = parsed[0]!.claims;
    const nonce = o.nonce ?? randomBytes(32);
    const bound = o.bindStepUp === undefined ? o.stepup : (o.bindStepUp ?? undefined);
    const binding = bindingDigest({
      jkt: holder.jkt,
      chainDigest: chainDigest(grants),
      policySnapshot: SNAP,
      taskId: root.task.id,
      nonce,
      ...(bound ? { stepUpDigest: stepUpListDigest(bound) } : {}),
    });
    let act: ActClaim = { sub: root.principal.sub, iss: root.principal.iss };
    for (const g of parsed.slice(1)) act = { sub: g.claims.from!.sub, act };
    const exp = Math.min(o.now + (o.ttl ?? 600), root.task.exp, ...parsed.map((g) => g.claims.exp));
    const ev = o.ev ?? Buffer.from('join-token-evidence-digest-only');
    const claims: WritClaims = {
      iss: this.issuer,
      sub: holder.spiffeId,
      jti: randomBytes(16).toString('base64url'),
      iat: o.now,
      exp,
      cnf: { jkt: holder.jkt },
      svid: { 'x5t#S256': createHash('sha256').update('svid').digest('base64url') },
      principal: root.principal,
      act,
      task: root.task,
      grants,
      lineage: parsed.map((g) => g.claims.jti),
      att: {
        type: o.type ?? 'join_token',
        sel: o.sel ?? ['join_token:abc'],
        bind: binding.toString('base64url'),
        nonce: nonce.toString('base64url'),
        ev_sha256: createHash('sha256').update(ev).digest('base64url'),
        ...(o.ev ? { ev: o.ev.toString('base64url') } : {}),
      },
      pol: { snap: SNAP, decision: 'allow', policies: ['agents-receive'], iat: o.polIat ?? o.now - 60 },
      ...(o.stepup ? { stepup: o.stepup } : {}),
      ...o.override,
    };
    return { writ: signJws({ typ: WRIT_TYP, kid: this.kid }, { ...claims }, this.key), claims, binding };
  }
}

/** A hop grant from `parent` (holding `parentWritJti`) to `child`. */
export function hop(
  parentGrant: string,
  parent: Agent,
  child: Agent,
  now: number,
  req: { scope?: Permission[]; boundaries?: Permission[]; escalate?: Permission[]; exp?: number; writ?: string } = {},
): string {
  return delegateGrant(parentGrant, parent.key, {
    childJkt: child.jkt,
    now,
    from: { sub: parent.spiffeId, writ: req.writ ?? randomBytes(16).toString('base64url') },
    ...(req.scope ? { scope: req.scope } : {}),
    ...(req.boundaries ? { boundaries: req.boundaries } : {}),
    ...(req.escalate ? { escalate: req.escalate } : {}),
    ...(req.exp ? { exp: req.exp } : {}),
  });
}

/** A hop grant with arbitrary claims over a valid link, signed by `signer` (default: the parent). */
export function rawHop(
  parentGrant: string,
  signer: KeyObject,
  override: Record<string, unknown>,
  child: Agent,
  fromSub = 'spiffe://example.org/agent/a',
): string {
  const p = parseGrant(parentGrant).claims;
  const claims = {
    iss: p.iss,
    jti: newGrantId(),
    iat: p.iat,
    exp: p.exp,
    rid: p.rid,
    prev: sha256b64url(parentGrant),
    depth: p.depth + 1,
    max_depth: p.max_depth,
    task: p.task,
    principal: p.principal,
    from: { sub: fromSub, writ: randomBytes(16).toString('base64url') },
    dlg: { jkt: child.jkt },
    scope: p.scope,
    boundaries: p.boundaries,
    escalate: p.escalate,
    ...override,
  };
  return signJws({ typ: GRANT_TYP, jwk: publicJwk(createPublicKey(signer)) }, claims, signer);
}
