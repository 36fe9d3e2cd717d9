/**
 * The Workload API's messages for one identity (SPIFFE Workload API §5.1, §6.1): the chain leaf
 * first as concatenated DER, the key as unencrypted PKCS#8 DER, bundles as concatenated DER
 * keyed by the trust domain's SPIFFE ID, JWT bundles as JWKS holding only JWT authorities.
 * Each message is built once per identity and frozen, so fan-out serializes it once.
 */
import { create } from '@bufbuild/protobuf';
import { parseSpiffeBundle } from '../../spiffe/bundle.js';
import {
  JWTBundlesResponseSchema,
  X509BundlesResponseSchema,
  X509SVIDResponseSchema,
  type JWTBundlesResponse,
  type X509BundlesResponse,
  type X509SVIDResponse,
} from '../../gen/spiffe/workload/workload_pb.js';
import type { SidecarIdentity, TrustBundle } from '../state.js';

/** The key of a trust domain's bundle in the Workload API's maps: its SPIFFE ID. */
export const trustDomainId = (b: TrustBundle): string => `spiffe://${b.trustDomain}`;

const x509Cache = new WeakMap<SidecarIdentity, X509SVIDResponse>();
const x509BundleCache = new WeakMap<TrustBundle, X509BundlesResponse>();
const jwtBundleCache = new WeakMap<TrustBundle, JWTBundlesResponse>();

/** FetchX509SVID's message; the identity must hold its key in this process. */
export function x509SvidResponse(id: SidecarIdentity): X509SVIDResponse {
  let m = x509Cache.get(id);
  if (!m) {
    if (!id.privateKeyPkcs8) throw new Error('workload-api: the identity has no deliverable key');
    m = Object.freeze(
      create(X509SVIDResponseSchema, {
        svids: [
          {
            spiffeId: id.spiffeId,
            x509Svid: Buffer.concat(id.svidChain),
            x509SvidKey: id.privateKeyPkcs8,
            bundle: Buffer.concat(id.bundle.x509Authorities),
          },
        ],
        // No federation in writ: the map is present and empty (§4.4: empty means none).
        federatedBundles: {},
      }),
    );
    x509Cache.set(id, m);
  }
  return m;
}

export function x509BundlesResponse(b: TrustBundle): X509BundlesResponse {
  let m = x509BundleCache.get(b);
  if (!m) {
    m = Object.freeze(create(X509BundlesResponseSchema, { bundles: { [trustDomainId(b)]: Buffer.concat(b.x509Authorities) } }));
    x509BundleCache.set(b, m);
  }
  return m;
}

/** The JWT authorities as a JWKS (every key with its `kid`; X.509 and writ keys left out, as SPIFFE JWT bundles hold). */
export function jwtBundleJwks(b: TrustBundle): string {
  const parsed = parseSpiffeBundle(b.trustDomain, b.jwks);
  const keys = [...parsed.jwtAuthorities].map(([kid, key]) => ({ use: 'jwt-svid', kid, ...(key.export({ format: 'jwk' }) as Record<string, unknown>) }));
  return JSON.stringify({ keys });
}

export function jwtBundlesResponse(b: TrustBundle): JWTBundlesResponse {
  let m = jwtBundleCache.get(b);
  if (!m) {
    m = Object.freeze(create(JWTBundlesResponseSchema, { bundles: { [trustDomainId(b)]: Buffer.from(jwtBundleJwks(b)) } }));
    jwtBundleCache.set(b, m);
  }
  return m;
}
