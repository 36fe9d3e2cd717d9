/**
 * The peer checks of src/workload/tls.ts, on certificates made to break one rule each: the chain
 * verifies to the source's bundle, the leaf names exactly one URI SAN, and the authorizer
 * compares the whole ID (no prefix, no other trust domain).
 */
import { describe, expect, it } from 'vitest';
import type { Bundle } from '../../src/spiffe/bundle.js';
import { authorizeAny, authorizeID, authorizeMemberOf, authorizeOneOf, authorizePeer, type X509Source } from '../../src/workload/index.js';
import { backoffDelay } from '../../src/workload/source.js';
import { makeCert, rootAndLeaf } from '../helpers/testca.js';

const TD = 'example.org';
const ID = 'spiffe://example.org/workload/a';

const { root, leaf } = rootAndLeaf(TD, ID);
const bundle: Bundle = { trustDomain: TD, x509Authorities: [root.der], jwtAuthorities: new Map() };
const source = { bundle: () => bundle, clock: () => Date.now() } as unknown as X509Source;

describe('authorizePeer', () => {
  it('accepts the expected ID under the bundle', () => {
    expect(authorizePeer(source, [leaf.der], authorizeID(ID)).uri).toBe(ID);
    expect(authorizePeer(source, [leaf.der], authorizeMemberOf('spiffe://example.org')).uri).toBe(ID);
    expect(authorizePeer(source, [leaf.der], authorizeOneOf('spiffe://example.org/x', ID)).uri).toBe(ID);
  });
  it('compares the whole ID: a prefix, a longer path or another trust domain is refused', () => {
    expect(() => authorizePeer(source, [leaf.der], authorizeID('spiffe://example.org/workload'))).toThrow(/unexpected ID/);
    expect(() => authorizePeer(source, [leaf.der], authorizeID(`${ID}/sub`))).toThrow(/unexpected ID/);
    expect(() => authorizePeer(source, [leaf.der], authorizeMemberOf('example.com'))).toThrow(/unexpected trust domain/);
  });
  it('refuses a leaf with two URI SANs or none, whatever the authorizer', () => {
    const two = makeCert({ subjectCn: 'l', issuer: root, uris: [ID, 'spiffe://example.org/other'] });
    const none = makeCert({ subjectCn: 'l', issuer: root });
    expect(() => authorizePeer(source, [two.der], authorizeAny())).toThrow(/more than one URI SAN/);
    expect(() => authorizePeer(source, [none.der], authorizeAny())).toThrow(/no URI SAN/);
  });
  it('refuses a chain that does not verify to the bundle, and an empty chain', () => {
    const other = rootAndLeaf(TD, ID);
    expect(() => authorizePeer(source, [other.leaf.der], authorizeAny())).toThrow(/unknown authority/);
    expect(() => authorizePeer(source, [], authorizeAny())).toThrow(/no certificate/);
  });
  it('backs off exponentially with jitter, capped', () => {
    expect(backoffDelay(0, 0.5)).toBe(500);
    expect(backoffDelay(3, 0.5)).toBe(4000);
    expect(backoffDelay(40, 1)).toBe(36_000);
    expect(backoffDelay(40, 0)).toBe(24_000);
  });
});
