/**
 * Relying-party verification of a writ and its proof of possession, offline
 * (docs/writ-format.md §Verification). Two levels:
 *   standard — issuer signature, proof of possession (replay cache), times, audience, task,
 *              lineage not revoked as far as the verifier knows, attenuation of the chain,
 *              binding digest recomputed from the writ's own contents;
 *   deep     — also every grant signature, and the embedded evidence re-verified against the
 *              hardware roots the relying party trusts, over that recomputed binding digest.
 * The report lists every check with who made it: the verifier itself, or the issuer (taken on
 * its word, because the writ is signed by it). UNTRUSTED input enters here.
 */
import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto';
import { WritVerifyError, isWritError } from '../errors.js';
import { verifyJws } from '../jose/jws.js';
import { verifyChain } from '../delegation/chain.js';
import { authorizeAction, type Authorization, type Constraints, type Permission } from '../delegation/scope.js';
import { stepUpListDigest, verifyStepUpGrant, type VerifiedStepUp } from '../delegation/step-up.js';
import type { Grant, PrincipalRef, Task } from '../delegation/grant.js';
import type { EvidenceReverifier } from '../attestation/verifier.js';
import { bindingDigest } from './binding.js';
import { checkProof, recordProof, type ReplayCache } from './proof.js';
import { parseWritCached, type ActClaim, type WritClaims, type WritRenewal } from './writ.js';

/** Clock skew tolerated on writ and grant times, seconds. */
export const WRIT_SKEW_S = 5;

export interface WritTrust {
  /** The issuer's trust domain ID, `spiffe://<td>`. */
  readonly issuer: string;
  /** The issuer's writ keys by kid (`use` "writ" in its SPIFFE bundle). */
  readonly writKeys: ReadonlyMap<string, KeyObject>;
}

export interface WritRequirements {
  /** The evidence type must be one of these. */
  readonly evidenceTypes?: readonly string[];
  /** Every one of these selectors ("type:value") must be in the writ. */
  readonly selectors?: readonly string[];
  /** The policy snapshot must have been created at most this many seconds ago. */
  readonly maxPolicyAgeSeconds?: number;
  /** The policy snapshot must be one of these digests. */
  readonly policySnapshots?: readonly string[];
  /** The principal must come from this OIDC issuer. */
  readonly principalIssuer?: string;
}

export interface VerifyWritOptions {
  readonly writ: string;
  readonly proof: string;
  readonly trust: WritTrust;
  /** This relying party: the proof's `aud`, and a member of the writ's `aud` when it has one. */
  readonly audience: string;
  /** When given, the proof's method must be this. */
  readonly method?: string;
  /**
   * The issuer verifying a writ it minted, presented to itself (Revoke): the writ's `aud` names
   * the relying parties it may be presented to, not its issuer, so it is not required to list
   * `audience` (the proof's `aud` still must be it). Never for a relying party.
   */
  readonly presentedToIssuer?: boolean;
  readonly now: Date;
  readonly level?: 'standard' | 'deep';
  /**
   * Where proof ids are remembered so each proof is accepted once; without one the report says
   * the replay check was not made (a replayed proof would pass).
   */
  readonly replayCache?: ReplayCache;
  /** What this verifier knows of revocations (a watch stream, status lists, the issuer's store). */
  readonly revocation?: RevocationSource;
  readonly requirements?: WritRequirements;
  /** Deep level: offline re-verifiers per evidence type, each bound to this relying party's trust anchors. */
  readonly reverifiers?: ReadonlyMap<string, EvidenceReverifier>;
  /**
   * Deep level: pin where approvals' WebAuthn assertions must have been made (the issuer's
   * console RP ID and origins); by default each step-up grant's own (the issuer's word).
   */
  readonly approvals?: { readonly rpId?: string; readonly origins?: readonly string[] };
}

/** One approval a writ carries (a verified step-up grant), and how this writ holds it. */
export interface WritApproval {
  /** The step-up grant's jti. */
  readonly id: string;
  readonly approvalId: string;
  /** The approver: OIDC issuer and subject. */
  readonly approver: PrincipalRef;
  readonly permission: Permission;
  readonly inherit: boolean;
  /** Granted to an ancestor of this agent (and carried because `inherit` lets it), not to this agent. */
  readonly inherited: boolean;
  readonly expiresAt: number;
  /** Deep level: the approver's WebAuthn assertion, checked here. */
  readonly assertion?: NonNullable<VerifiedStepUp['assertion']>;
}

export interface Check {
  readonly check: string;
  /** Checked here; taken on the issuer's word; or not checked at all. */
  readonly by: 'verifier' | 'issuer' | 'unchecked';
}

/** One revocation answer, with where it comes from and how fresh it is. */
export interface RevocationStatus {
  readonly revoked: boolean;
  /** What matched, when revoked (e.g. "grant 3xA… revoked by operator: compromised"). */
  readonly reason?: string;
  /** The source and its freshness: "watch stream at sequence 42 (…)", "status list <uri> issued …". */
  readonly source: string;
}

/**
 * What a verifier knows of revocations. `check` answers from what the source holds now and
 * throws when it cannot answer (never synced, or older than its maximum age): a verifier that
 * was given a source fails closed rather than report a check it did not make.
 */
export interface RevocationSource {
  check(writ: { readonly claims: WritClaims; readonly grants: readonly Grant[] }, now: Date): RevocationStatus;
  /**
   * Fetches or refreshes, when due, what `check` needs for this (compact) writ, e.g. its status
   * list. Callers that can wait (the HTTP middleware) await it before verifying; it may throw,
   * and `check` then says why it cannot answer.
   */
  prepare?(writ: string): Promise<void>;
}

export interface VerifiedWrit {
  readonly level: 'standard' | 'deep';
  readonly spiffeId: string;
  readonly principal: PrincipalRef;
  /** From the principal down to this agent: the principal's `iss#sub`, then each agent's SPIFFE ID. */
  readonly chain: readonly string[];
  readonly task: Task;
  readonly lineage: readonly string[];
  readonly jti: string;
  readonly expiresAt: number;
  readonly evidenceType: string;
  readonly selectors: readonly string[];
  /** Set when the writ was minted by an SVID renewal (`att.renewed`). */
  readonly renewed?: WritRenewal;
  readonly policy: WritClaims['pol'];
  /** What the last grant allows: what `authorize` answers from, with `approvals`. */
  readonly constraints: Constraints;
  /** The step-up grants it carries, each verified (signature, times, task, agent; at deep level the assertion). */
  readonly approvals: readonly WritApproval[];
  readonly checks: readonly Check[];
  readonly claims: WritClaims;
}

const fail = (msg: string, cause?: unknown): never => {
  throw new WritVerifyError('ERR_WRIT_INVALID', `writ: ${msg}`, { cause });
};

/** The act chain, outermost first, as a list; checks nesting matches the grants. */
function actList(act: ActClaim): ActClaim[] {
  const out: ActClaim[] = [];
  for (let a: ActClaim | undefined = act; a; a = a.act) out.push(a);
  return out;
}

/** Binding digests recomputed before, by the (cached, immutable) claims they come from. */
const bindings = new WeakMap<WritClaims, Buffer>();

export function verifyWrit(o: VerifyWritOptions): VerifiedWrit {
  const level = o.level ?? 'standard';
  const checks: Check[] = [];
  const mine = (check: string) => checks.push({ check, by: 'verifier' });
  const theirs = (check: string) => checks.push({ check, by: 'issuer' });
  const unchecked = (check: string) => checks.push({ check, by: 'unchecked' });
  const now = Math.floor(o.now.getTime() / 1000);

  const writ = parseWritCached(o.writ);
  const c = writ.claims;
  if (c.iss !== o.trust.issuer) fail(`issued by ${c.iss.slice(0, 80)}, not the trusted issuer ${o.trust.issuer}`);
  const key = o.trust.writKeys.get(writ.jws.header.kid as string);
  if (!key) fail('signed by a key the trust bundle does not hold (kid unknown)');
  if (!verifyJws(writ.jws, key!)) fail('issuer signature does not verify');
  mine(`issuer signature by writ key ${writ.jws.header.kid as string} of ${o.trust.issuer}`);

  // Checked now, recorded last: a proof presented with a writ that fails any other check is not used up.
  const proof = checkProof(o.proof, {
    writCompact: o.writ,
    writHash: writ.hash,
    jkt: c.cnf.jkt,
    audience: o.audience,
    ...(o.method !== undefined ? { method: o.method } : {}),
    now: o.now,
  });
  mine(`proof of possession by the cnf key, for audience ${o.audience}${o.method ? ` and method ${o.method}` : ''}`);

  if (c.iat > now + WRIT_SKEW_S) fail('issued in the future');
  if (c.exp <= now - WRIT_SKEW_S) fail('expired');
  if (c.task.exp <= now - WRIT_SKEW_S) fail(`the task ${c.task.id} has ended`);
  if (c.exp > c.task.exp) fail('outlives its task');
  mine('times: issued, not expired, task not ended, writ within the task');
  if (c.aud !== undefined && !o.presentedToIssuer) {
    if (!c.aud.includes(o.audience)) fail('not issued for this audience');
    mine('audience listed in the writ');
  }

  let chain;
  try {
    chain = verifyChain({
      grants: c.grants,
      issuer: o.trust.issuer,
      ...(level === 'deep' ? { issuerKeys: o.trust.writKeys } : {}),
      now,
      leafJkt: c.cnf.jkt,
      skew: WRIT_SKEW_S,
    });
  } catch (e) {
    if (isWritError(e)) throw new WritVerifyError('ERR_WRIT_INVALID', `writ: ${e.message}`, { cause: e });
    throw e;
  }
  if (chain.lineage.length !== c.lineage.length || chain.lineage.some((id, i) => id !== c.lineage[i])) fail('lineage does not list the grants it carries');
  const root = chain.root.claims;
  if (root.principal.iss !== c.principal.iss || root.principal.sub !== c.principal.sub) fail('principal differs from the root grant');
  if (root.task.id !== c.task.id || root.task.goal !== c.task.goal || root.task.exp !== c.task.exp) fail('task differs from the root grant');
  if (c.exp > chain.leaf.claims.exp) fail('outlives its last grant');
  // act: outermost is the direct delegator; innermost is the principal.
  const acts = actList(c.act);
  const delegators = chain.grants
    .slice(1)
    .map((g) => g.claims.from!.sub)
    .reverse();
  const expected = [...delegators, c.principal.sub];
  if (acts.length !== expected.length || acts.some((a, i) => a.sub !== expected[i])) fail('act chain does not match the grants');
  const inner = acts[acts.length - 1]!;
  if (inner.iss !== c.principal.iss || acts.slice(0, -1).some((a) => a.iss !== undefined)) fail('act chain does not end at the principal');
  mine(
    `delegation chain of ${chain.grants.length} grant(s): links, attenuation, depth ≤ ${root.max_depth}, expiry, no cycles, last grant bound to the cnf key`,
  );
  const approvals = c.stepup ? checkStepUps(c, chain, o, level) : [];
  if (approvals.length) {
    mine(
      `${approvals.length} step-up grant(s): issuer signature, times, task, principal, granted to this agent${approvals.some((a) => a.inherited) ? ' or inherited from an ancestor that allowed it' : ''}, within the writ`,
    );
    for (const a of approvals) {
      const who = `${a.approver.iss}#${a.approver.sub}`;
      const what = `${a.permission.action} on ${a.permission.resource}`;
      if (a.assertion)
        mine(
          `approval ${a.approvalId} (${what}) by ${who}: WebAuthn ${a.assertion.algorithm} assertion over the approval request, origin ${a.assertion.origin}, RP ID ${a.assertion.rpId}, user present and verified`,
        );
      else theirs(`approval ${a.approvalId} (${what}) by ${who}: the approver's WebAuthn assertion (verify with --deep)`);
    }
    theirs('each approver’s passkey is registered to the OIDC identity it names, and policy let them approve');
  }
  if (level === 'deep') mine('every grant signature: the root by the issuer writ key, each hop by its parent agent key');
  else theirs('grant signatures (checked at issuance; verify with --deep)');
  theirs('each delegating agent held a writ for its SPIFFE ID (from.sub) when it delegated');

  if (o.revocation) {
    let st: RevocationStatus;
    try {
      st = o.revocation.check({ claims: c, grants: chain.grants }, o.now);
    } catch (e) {
      return fail(`revocation status unknown: ${(e as Error).message}`, e);
    }
    if (st.revoked) throw new WritVerifyError('ERR_WRIT_REVOKED', `writ: revoked: ${st.reason ?? 'a revocation matches it'} (${st.source})`);
    mine(`not revoked: not the writ, its lineage, task, principal, agents, keys or platform (${st.source})`);
  } else {
    unchecked('revocation: no revocation source was given (a watch stream or a status list)');
  }

  let B = bindings.get(c);
  if (!B) {
    B = bindingDigest({
      jkt: c.cnf.jkt,
      chainDigest: chain.digest,
      policySnapshot: c.pol.snap,
      taskId: c.task.id,
      nonce: Buffer.from(c.att.nonce, 'base64url'),
      ...(c.stepup ? { stepUpDigest: stepUpListDigest(c.stepup) } : {}),
    });
    bindings.set(c, B);
  }
  const claimed = Buffer.from(c.att.bind, 'base64url');
  if (claimed.length !== B.length || !timingSafeEqual(claimed, B))
    fail(`binding digest does not match the key, grants, policy snapshot, task${c.stepup ? ', nonce and step-up grants' : ' and nonce'} it carries`);
  mine(`binding digest recomputed from the key, grant chain, policy snapshot, task${c.stepup ? ', nonce and step-up grants' : ' and nonce'}`);

  const r = o.requirements ?? {};
  if (r.evidenceTypes && !r.evidenceTypes.includes(c.att.type)) fail(`evidence type ${c.att.type} is not one this relying party accepts`);
  if (r.selectors) {
    const missing = r.selectors.find((s) => !c.att.sel.includes(s));
    if (missing) fail(`required selector ${missing} is not in the writ`);
  }
  if (r.maxPolicyAgeSeconds !== undefined && now - c.pol.iat > r.maxPolicyAgeSeconds)
    fail(`policy snapshot is ${now - c.pol.iat}s old; at most ${r.maxPolicyAgeSeconds}s accepted`);
  if (r.policySnapshots && !r.policySnapshots.includes(c.pol.snap)) fail('policy snapshot is not one this relying party accepts');
  if (r.principalIssuer !== undefined && c.principal.iss !== r.principalIssuer) fail('principal comes from another OIDC issuer');
  if (Object.keys(r).length) mine('relying-party requirements');

  let selectors = c.att.sel;
  if (level === 'deep') {
    const rv = o.reverifiers?.get(c.att.type);
    if (c.att.ev === undefined) {
      // A type that can be re-verified must carry its evidence: a writ without it is a component dropped.
      if (rv) fail(`deep verification needs the ${c.att.type} evidence, and the writ does not embed it`);
      theirs(`evidence (${c.att.type}) verified by the issuer; it is not embedded (a secret, or not re-verifiable offline)`);
    } else {
      const ev = Buffer.from(c.att.ev, 'base64url');
      if (createHash('sha256').update(ev).digest('base64url') !== c.att.ev_sha256) fail('embedded evidence does not match its digest');
      if (!rv) fail(`no offline verifier for evidence type ${c.att.type}`);
      let out;
      try {
        out = rv!.reverify(ev, { binding: B, agentJkt: c.cnf.jkt, at: o.now });
      } catch (e) {
        fail(`embedded evidence fails re-verification: ${(e as Error).message}`, e);
      }
      const recomputed = new Set(out!.selectors.map((s) => `${s.type}:${s.value}`));
      const issuerTypes = out!.issuerSelectorTypes ?? [];
      const byIssuer = (s: string) => issuerTypes.some((t) => s.startsWith(`${t}:`));
      const fromIssuer = c.att.sel.filter(byIssuer);
      const own = c.att.sel.filter((s) => !byIssuer(s));
      if ([...recomputed].some(byIssuer) || recomputed.size !== own.length || own.some((s) => !recomputed.has(s)))
        fail('selectors differ from those the evidence proves');
      out!.checked.forEach(mine);
      mine(fromIssuer.length ? 'selectors recomputed from the evidence equal the writ’s others' : 'selectors recomputed from the evidence equal the writ');
      out!.takenFromIssuer.forEach(theirs);
      for (const s of fromIssuer) theirs(`selector ${s} (not recomputable here)`);
      selectors = [...recomputed, ...fromIssuer];
    }
  } else {
    theirs(`evidence (${c.att.type}) and the selectors it proves (re-verify with --deep)`);
  }
  theirs(`registration: selectors map to ${c.sub}`);
  theirs(`policy snapshot ${c.pol.snap.slice(0, 16)}… allowed this agent (${c.pol.policies.join(', ') || 'no ids'})`);

  if (o.replayCache) {
    recordProof(proof, o.replayCache, o.now);
    mine('proof one-time id recorded (not seen before)');
  } else {
    unchecked('proof one-time id: no replay cache was given (a replayed proof would be accepted)');
  }

  const leaf = chain.leaf.claims;
  return {
    level,
    spiffeId: c.sub,
    principal: c.principal,
    chain: [`${c.principal.iss}#${c.principal.sub}`, ...chain.grants.slice(1).map((g) => g.claims.from!.sub), c.sub],
    task: c.task,
    lineage: c.lineage,
    jti: c.jti,
    expiresAt: c.exp,
    evidenceType: c.att.type,
    selectors,
    ...(c.att.renewed ? { renewed: c.att.renewed } : {}),
    policy: c.pol,
    constraints: { scope: leaf.scope, boundaries: leaf.boundaries, escalate: leaf.escalate },
    approvals,
    checks,
    claims: c,
  };
}

/**
 * Is `action` on `resource` allowed: outside the boundaries, and either approved by a step-up
 * grant the writ carries or inside its scope and not an escalation (docs/writ-format.md
 * §Authority of a writ with step-up grants)?
 */
export function authorize(w: Pick<VerifiedWrit, 'constraints'> & Partial<Pick<VerifiedWrit, 'approvals'>>, action: string, resource: string): Authorization {
  return authorizeAction(w.constraints, action, resource, w.approvals ?? []);
}

/**
 * The step-up grants of a writ whose chain verified (docs/writ-format.md §Authority of a writ
 * with step-up grants): each signed by a writ key, valid now, for this task and principal, not
 * outlived by the writ, granted to this agent (its last grant, key and SPIFFE ID) or to an
 * ancestor that let descendants carry it; none repeated. Any other is a refusal, never skipped.
 */
function checkStepUps(c: WritClaims, chain: ReturnType<typeof verifyChain>, o: VerifyWritOptions, level: 'standard' | 'deep'): WritApproval[] {
  const out: WritApproval[] = [];
  const ids = new Set<string>();
  const approvalIds = new Set<string>();
  const n = chain.grants.length;
  for (const [i, compact] of c.stepup!.entries()) {
    let v: VerifiedStepUp;
    try {
      v = verifyStepUpGrant(compact, {
        issuer: o.trust.issuer,
        writKeys: o.trust.writKeys,
        now: o.now,
        expectedTask: c.task,
        expectedPrincipal: c.principal,
        assertion: level === 'deep',
        ...(o.approvals?.rpId !== undefined ? { expectedRpId: o.approvals.rpId } : {}),
        ...(o.approvals?.origins !== undefined ? { expectedOrigins: o.approvals.origins } : {}),
      });
    } catch (e) {
      if (isWritError(e)) return fail(`step-up grant ${i}: ${e.message}`, e);
      throw e;
    }
    if (ids.has(v.id) || approvalIds.has(v.approvalId)) fail(`step-up grant ${i} repeats another's id or approval`);
    ids.add(v.id);
    approvalIds.add(v.approvalId);
    if (c.exp > v.expiresAt) fail(`outlives step-up grant ${i}`);
    const a = v.agent;
    const k = c.lineage.indexOf(a.grant);
    let inherited = false;
    if (k === n - 1) {
      if (a.jkt !== c.cnf.jkt || a.sub !== c.sub) fail(`step-up grant ${i} names this writ's last grant but another agent key or SPIFFE ID`);
    } else if (k < 0) {
      fail(`step-up grant ${i} was granted to another agent (its grant is not in this writ's lineage)`);
    } else {
      if (!v.inherit) fail(`step-up grant ${i} was granted to an ancestor (grant ${k}) and does not let descendants carry it (inherit is false)`);
      if (chain.grants[k]!.claims.dlg.jkt !== a.jkt || chain.grants[k + 1]!.claims.from?.sub !== a.sub)
        fail(`step-up grant ${i} names grant ${k} of the lineage but not the agent that held it`);
      inherited = true;
    }
    out.push({
      id: v.id,
      approvalId: v.approvalId,
      approver: v.approver,
      permission: v.permission,
      inherit: v.inherit,
      inherited,
      expiresAt: v.expiresAt,
      ...(v.assertion ? { assertion: v.assertion } : {}),
    });
  }
  return out;
}
