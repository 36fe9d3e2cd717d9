/**
 * Targets: grants (src/delegation/grant.ts), writs (src/writ/writ.ts), proofs of possession
 * (src/writ/proof.ts), and the issuer-key JWS verification of writs and grant chains.
 */
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { parseGrant } from '../../../src/delegation/grant.js';
import { verifyChain } from '../../../src/delegation/chain.js';
import { jwkThumbprint, verifyJws } from '../../../src/jose/jws.js';
import { parseWrit } from '../../../src/writ/writ.js';
import { createProof, ProofReplayCache, verifyProof } from '../../../src/writ/proof.js';
import { FakeIssuer, hop, rawHop, type Agent } from '../../helpers/writ-fixture.js';
import type { FuzzTarget } from '../engine/contract.js';
import { jwsMutator } from '../engine/mutators.js';
import { AT, AT_S, ecKey, stable } from '../fixtures.js';
import { encodeEvidence2 } from '../../../src/tpm/evidence.js';

/** The FakeIssuer of the writ tests with a fixed key and kid. */
class FixedIssuer extends FakeIssuer {
  override readonly key = ecKey('writ issuer');
  override readonly kid = 'writ-fuzz';
}

function fixedAgent(name: string): Agent {
  const key = ecKey(`agent ${name}`);
  return { key, jkt: jwkThumbprint(createPublicKey(key)), spiffeId: `spiffe://example.org/agent/${name}` };
}

interface WritWorld {
  readonly issuer: FixedIssuer;
  readonly a: Agent;
  readonly b: Agent;
  readonly root: string;
  readonly hop1: string;
  readonly hop2: string;
  readonly writs: readonly string[];
}

let world: WritWorld | undefined;
/** A root grant to agent a, a hop from a to b, a hop from b to c, and writs for a and b (one with evidence embedded). */
function writWorld(): WritWorld {
  if (world) return world;
  const issuer = new FixedIssuer();
  const a = fixedAgent('a');
  const b = fixedAgent('b');
  const c = fixedAgent('c');
  const [root, hop1, hop2, writA, writB] = stable('writ: root grant to a, hop a→b, hop b→c, writ of a, writ of b (evidence embedded)', () => {
    const r = issuer.rootGrant(a, { now: AT_S - 60, ttl: 3600, maxDepth: 3 });
    const h1 = hop(r, a, b, AT_S - 30, {
      scope: [{ action: 'repo:read', resource: 'repo://acme/widgets*' }],
      boundaries: [{ action: '*', resource: 'repo://acme/widgets/secrets*' }],
    });
    const h2 = rawHop(h1, b.key, { depth: 2, scope: [{ action: 'repo:read', resource: 'repo://acme/widgets/a' }] }, c, b.spiffeId);
    const ev = encodeEvidence2(randomBytes(32));
    const opts = { now: AT_S - 10, type: 'tpm', sel: ['tpm:ek_hash:abc', 'tpm:model:swtpm'], ev, override: { aud: ['spiffe://example.org/tool'] } };
    return [r, h1, h2, issuer.writ(a, [r], { now: AT_S - 10 }).writ, issuer.writ(b, [r, h1], opts).writ];
  }) as [string, string, string, string, string];
  world = { issuer, a, b, root, hop1, hop2, writs: [writA, writB] };
  return world;
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');

export const grantTarget: FuzzTarget = {
  name: 'grant',
  parsers: 'src/delegation/grant.ts: parseGrant (with src/delegation/scope.ts parsePermissions)',
  contract: 'returns the grant or throws a WritError (ERR_GRANT_INVALID, ERR_JWS_INVALID)',
  maxLen: 16 * 1024,
  sources: ['src/delegation/grant.ts', 'src/delegation/scope.ts', 'src/jose/claims.ts'],
  setup: () => {
    const w = writWorld();
    return {
      seeds: [w.root, w.hop1, w.hop2].map(latin1),
      mutators: [jwsMutator, jwsMutator],
      run(data) {
        parseGrant(data.toString('latin1'));
        return undefined;
      },
    };
  },
};

export const grantChainTarget: FuzzTarget = {
  name: 'grant-chain',
  signed: true,
  parsers: 'src/delegation/chain.ts: verifyChain with the issuer key (grants one per line, root first) at a fixed instant',
  contract: 'accepts only chains made of the valid signed grants, byte for byte; else throws a WritError (ERR_GRANT_INVALID)',
  maxLen: 32 * 1024,
  sources: ['src/delegation/chain.ts', 'src/delegation/grant.ts', 'src/delegation/scope.ts'],
  setup: () => {
    const w = writWorld();
    const grants = new Set([w.root, w.hop1, w.hop2]);
    const chains = [[w.root], [w.root, w.hop1], [w.root, w.hop1, w.hop2]];
    return {
      seeds: chains.map((c) => latin1(c.join('\n'))),
      mutators: [jwsMutator, jwsMutator],
      isValid: (data) =>
        data
          .toString('latin1')
          .split('\n')
          .every((g) => grants.has(g)),
      run(data) {
        const list = data.toString('latin1').split('\n');
        const leaf = parseGrant(list[list.length - 1]!);
        verifyChain({ grants: list, issuer: w.issuer.issuer, issuerKeys: w.issuer.trust.writKeys, now: AT_S, leafJkt: leaf.claims.dlg.jkt });
        return 'accepted';
      },
    };
  },
};

export const writTarget: FuzzTarget = {
  name: 'writ',
  parsers: 'src/writ/writ.ts: parseWrit',
  contract: 'returns the writ or throws a WritError (ERR_WRIT_INVALID, ERR_JWS_INVALID)',
  maxLen: 32 * 1024,
  sources: ['src/writ/writ.ts', 'src/delegation/grant.ts', 'src/jose/claims.ts'],
  setup: () => ({
    seeds: writWorld().writs.map(latin1),
    mutators: [jwsMutator, jwsMutator],
    run(data) {
      parseWrit(data.toString('latin1'));
      return undefined;
    },
  }),
};

export const writSignatureTarget: FuzzTarget = {
  name: 'writ-signature',
  signed: true,
  parsers: "src/writ/writ.ts parseWrit, then src/jose/jws.ts verifyJws with the trust bundle's writ key named by kid (as verifyWrit does)",
  contract: 'accepts only the valid writs, byte for byte; else throws a WritError (ERR_WRIT_INVALID, ERR_JWS_INVALID)',
  maxLen: 32 * 1024,
  sources: ['src/writ/writ.ts', 'src/jose/jws.ts'],
  setup: () => {
    const w = writWorld();
    const trust = w.issuer.trust;
    const valid = new Set(w.writs);
    return {
      seeds: w.writs.map(latin1),
      mutators: [jwsMutator, jwsMutator],
      isValid: (data) => valid.has(data.toString('latin1')),
      run(data) {
        const writ = parseWrit(data.toString('latin1'));
        if (writ.claims.iss !== trust.issuer) return 'rejected';
        const key: KeyObject | undefined = trust.writKeys.get(writ.jws.header.kid as string);
        return key && verifyJws(writ.jws, key) ? 'accepted' : 'rejected';
      },
    };
  },
};

/** The holder of the writ of b, for whom proofs are made. */
export const HOLDER = () => fixedAgent('b');

export const proofTarget: FuzzTarget = {
  name: 'proof',
  signed: true,
  parsers: 'src/writ/proof.ts: verifyProof for a fixed writ, holder key, audience, method and instant (a fresh replay cache per input)',
  contract: 'accepts only the valid proofs, byte for byte; else throws a WritError (ERR_PROOF_INVALID, ERR_JWS_INVALID)',
  maxLen: 8192,
  sources: ['src/writ/proof.ts', 'src/jose/jws.ts'],
  setup: () => {
    const writ = writWorld().writs[1]!;
    const holder = HOLDER();
    const req = { audience: 'spiffe://example.org/tool', method: 'GET /repos/acme/widgets', now: AT };
    const proofs = stable('proof: two proofs by the holder of the writ of b, one by another key', () => [
      createProof(writ, holder.key, req),
      createProof(writ, holder.key, { ...req, lifetimeS: 300 }),
      createProof(writ, ecKey('not the holder'), req),
    ]);
    const valid = new Set(proofs.slice(0, 2));
    return {
      seeds: proofs.map(latin1),
      mutators: [jwsMutator, jwsMutator],
      isValid: (data) => valid.has(data.toString('latin1')),
      run(data) {
        verifyProof(data.toString('latin1'), {
          writCompact: writ,
          jkt: holder.jkt,
          audience: req.audience,
          method: req.method,
          now: AT,
          cache: new ProofReplayCache(),
        });
        return 'accepted';
      },
    };
  },
};
