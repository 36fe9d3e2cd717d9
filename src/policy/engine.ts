/**
 * Policy decisions over a snapshot. Cedar answers allow or deny; writ derives a third answer,
 * escalate, by evaluating twice: with every policy, and without the escalatable forbids. A
 * request that only the escalatable forbids stop is an escalation; a request no permit covers
 * stays a deny. Cedar skips a policy whose evaluation errors, which for a `forbid` would
 * allow: any decision that carries an error is a deny here. Requests are validated against
 * the schema. Policy sets are parsed once per snapshot (`preparsePolicySet`) and evaluated
 * with `statefulIsAuthorized`.
 */
import * as cedar from './cedar.js';
import { PolicyError } from '../errors.js';
import { CEDAR_SCHEMA } from './schema.js';
import type { Snapshot } from './snapshot.js';

export type DecisionKind = 'allow' | 'deny' | 'escalate';

export interface PolicyDecision {
  readonly decision: DecisionKind;
  readonly snapshot: string;
  /** Determining policy ids: the permits that allowed, or the forbids that denied or escalate. */
  readonly policies: readonly string[];
  /** Human-readable reason: the escalation reasons, "no policy permits", or the errors. */
  readonly reason: string;
}

export type CedarEntity = { uid: { type: string; id: string }; attrs: Record<string, cedar.CedarValueJson>; parents: [] };

export interface PolicyRequest {
  readonly principal: CedarEntity;
  readonly action: 'delegate' | 'receive' | 'approve';
  readonly resource: CedarEntity;
  readonly context: Record<string, cedar.CedarValueJson>;
}

/** Snapshots kept preparsed; older ones are parsed again if asked for. */
export const MAX_CACHED_SNAPSHOTS = 32;
const SCHEMA_NAME = 'writ-schema';

interface Loaded {
  readonly snapshot: Snapshot;
  readonly fullId: string;
  /** Absent when the snapshot has no escalatable forbid (the second evaluation is not needed). */
  readonly reducedId?: string;
  readonly escalateReason: ReadonlyMap<string, string>;
}

export class PolicyEngine {
  private readonly loaded = new Map<string, Loaded>();
  private slot = 0;

  constructor() {
    const r = cedar.preparseSchema(SCHEMA_NAME, CEDAR_SCHEMA);
    if (r.type === 'failure')
      throw new PolicyError('ERR_POLICY_INVALID', `policy: the built-in schema does not parse: ${r.errors.map((e) => e.message).join('; ')}`);
  }

  /** Parses a snapshot once; later calls with the same digest reuse it. */
  load(snapshot: Snapshot): Loaded {
    const hit = this.loaded.get(snapshot.digest);
    if (hit) {
      this.loaded.delete(snapshot.digest);
      this.loaded.set(snapshot.digest, hit);
      return hit;
    }
    // Slots bound the number of policy sets the wasm module holds.
    const slot = this.slot++ % MAX_CACHED_SNAPSHOTS;
    for (const [d, l] of this.loaded) if (l.fullId === `s${slot}`) this.loaded.delete(d);
    const all = Object.fromEntries(snapshot.policies.map((p) => [p.id, p.text]));
    const esc = snapshot.policies.filter((p) => p.escalate !== undefined);
    const parse = (id: string, policies: Record<string, string>) => {
      const r = cedar.preparsePolicySet(id, { staticPolicies: policies });
      if (r.type === 'failure')
        throw new PolicyError('ERR_POLICY_INVALID', `policy: snapshot ${snapshot.digest} does not parse: ${r.errors.map((e) => e.message).join('; ')}`);
    };
    parse(`s${slot}`, all);
    let reducedId: string | undefined;
    if (esc.length > 0) {
      reducedId = `s${slot}-noesc`;
      parse(reducedId, Object.fromEntries(snapshot.policies.filter((p) => p.escalate === undefined).map((p) => [p.id, p.text])));
    }
    const l: Loaded = { snapshot, fullId: `s${slot}`, ...(reducedId ? { reducedId } : {}), escalateReason: new Map(esc.map((p) => [p.id, p.escalate!])) };
    this.loaded.set(snapshot.digest, l);
    return l;
  }

  private evaluate(setId: string, req: PolicyRequest): { decision: 'allow' | 'deny'; reason: string[]; errors: string[] } {
    const answer = cedar.statefulIsAuthorized({
      principal: req.principal.uid,
      action: { type: 'Writ::Action', id: req.action },
      resource: req.resource.uid,
      context: req.context,
      entities: [req.principal, req.resource],
      preparsedPolicySetId: setId,
      preparsedSchemaName: SCHEMA_NAME,
      validateRequest: true,
    });
    if (answer.type === 'failure') return { decision: 'deny', reason: [], errors: answer.errors.map((e) => e.message) };
    const d = answer.response.diagnostics;
    return { decision: answer.response.decision, reason: d.reason, errors: d.errors.map((e) => `${e.policyId}: ${e.error.message}`) };
  }

  /** Decides one request against a snapshot. */
  decide(snapshot: Snapshot, req: PolicyRequest): PolicyDecision {
    const l = this.load(snapshot);
    const base = { snapshot: snapshot.digest };
    const full = this.evaluate(l.fullId, req);
    if (full.errors.length > 0) return { ...base, decision: 'deny', policies: [], reason: `policy evaluation failed, denied: ${full.errors.join('; ')}` };
    if (full.decision === 'allow') return { ...base, decision: 'allow', policies: full.reason, reason: 'permitted' };
    const escalatable = full.reason.filter((id) => l.escalateReason.has(id));
    if (!l.reducedId || escalatable.length === 0) {
      return {
        ...base,
        decision: 'deny',
        policies: full.reason,
        reason: full.reason.length ? `forbidden by ${full.reason.join(', ')}` : 'no policy permits this',
      };
    }
    const reduced = this.evaluate(l.reducedId, req);
    if (reduced.errors.length > 0) return { ...base, decision: 'deny', policies: [], reason: `policy evaluation failed, denied: ${reduced.errors.join('; ')}` };
    if (reduced.decision === 'allow') {
      return { ...base, decision: 'escalate', policies: escalatable, reason: escalatable.map((id) => l.escalateReason.get(id)!).join('; ') };
    }
    const stops = full.reason.filter((id) => !l.escalateReason.has(id));
    return { ...base, decision: 'deny', policies: stops, reason: stops.length ? `forbidden by ${stops.join(', ')}` : 'no policy permits this' };
  }

  /**
   * Decides several requests (one per permission); the answer is the strictest: any deny
   * denies, else any escalate escalates. Determining policies are the union.
   */
  decideAll(snapshot: Snapshot, reqs: readonly PolicyRequest[]): PolicyDecision {
    const all = reqs.map((r) => this.decide(snapshot, r));
    const worst = all.find((d) => d.decision === 'deny') ?? all.find((d) => d.decision === 'escalate');
    if (worst) return worst;
    return { snapshot: snapshot.digest, decision: 'allow', policies: [...new Set(all.flatMap((d) => d.policies))].sort(), reason: 'permitted' };
  }
}

/** A decision that is not allow, as the error the caller sees. */
export function refusal(d: PolicyDecision, what: string): PolicyError {
  if (d.decision === 'escalate') {
    return new PolicyError(
      'ERR_ESCALATION_REQUIRED',
      `policy: ${what} requires approval: ${d.reason} (snapshot ${d.snapshot.slice(0, 16)}, policies ${d.policies.join(', ')})`,
    );
  }
  return new PolicyError('ERR_POLICY_DENIED', `policy: ${what} denied: ${d.reason} (snapshot ${d.snapshot.slice(0, 16)})`);
}
