/**
 * JWT-SVIDs (JWT-SVID spec): compact JWS, RS/ES/PS only, `kid` always, `typ` JWT, `sub` a
 * SPIFFE ID, `aud` required, `exp` required. Minted and verified with Node's crypto.
 * Validation error strings follow go-spiffe's jwtsvid package. UNTRUSTED input enters here.
 */
import { verify } from 'node:crypto';
import { JWS_ALGORITHMS, decodeJws, keyFits, signOpts, type DecodedJws, type JwsAlg, type JwsSigner } from '../jose/jws.js';
import { SvidError } from '../errors.js';
import { parseSpiffeId, type SpiffeId } from '../spiffe/id.js';
import type { BundleSet } from '../spiffe/bundle.js';

/** Largest token we look at. */
export const MAX_JWT_BYTES = 16 * 1024;
/** Most audiences in one token. */
export const MAX_AUDIENCES = 16;

export type JwtAlg = JwsAlg;

/** JWT-SVID §3: the only algorithms a JWT-SVID may use (writ's JWS allow-list). */
export const JWT_ALGORITHMS = JWS_ALGORITHMS;

export interface JwtSvidSigner {
  readonly kid: string;
  /** The JWT key, wherever it is held; its `alg` is the configured JWT-SVID algorithm. */
  readonly signer: JwsSigner;
}

export interface JwtSvidClaims {
  readonly sub: string;
  readonly aud: readonly string[];
  readonly exp: number;
  readonly iat: number;
  readonly [k: string]: unknown;
}

export interface JwtSvid {
  readonly token: string;
  readonly id: SpiffeId;
  readonly audience: readonly string[];
  readonly expiresAt: Date;
  readonly claims: Record<string, unknown>;
  readonly header: Record<string, unknown>;
}

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');

/** Mints a JWT-SVID, then parses our own output before returning it. */
export async function mintJwtSvid(
  key: JwtSvidSigner,
  req: { spiffeId: SpiffeId; audience: readonly string[]; issuedAt: Date; expiresAt: Date },
): Promise<JwtSvid> {
  const { signer } = key;
  const spec = JWT_ALGORITHMS.get(signer.alg);
  if (!spec || !keyFits(spec, signer.publicKey)) throw new SvidError('ERR_JWT_SVID_INVALID', `jwtsvid: signing key does not fit ${signer.alg}`);
  if (req.audience.length === 0) throw new SvidError('ERR_JWT_SVID_INVALID', 'jwtsvid: audience is required');
  const header = { alg: signer.alg, kid: key.kid, typ: 'JWT' };
  const claims = {
    aud: [...req.audience],
    exp: Math.floor(req.expiresAt.getTime() / 1000),
    iat: Math.floor(req.issuedAt.getTime() / 1000),
    sub: req.spiffeId.uri,
  };
  const input = `${b64(header)}.${b64(claims)}`;
  const sig = await signer.sign(Buffer.from(input));
  const token = `${input}.${sig.toString('base64url')}`;
  const parsed = decodeJwt(token);
  if (parsed.claims.sub !== req.spiffeId.uri || parsed.header.kid !== key.kid) {
    throw new SvidError('ERR_JWT_SVID_INVALID', 'jwtsvid: minted token failed validation');
  }
  return { token, id: req.spiffeId, audience: claims.aud, expiresAt: new Date(claims.exp * 1000), claims, header };
}

function fail(msg: string, cause?: unknown): SvidError {
  return new SvidError('ERR_JWT_SVID_INVALID', `jwtsvid: ${msg}`, { cause });
}

/** Splits and decodes a compact JWS, enforcing the JWT-SVID algorithm allow-list (strict JSON, no `crit`). No signature check. */
export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown>; input: string; signature: Buffer } {
  let d: DecodedJws;
  try {
    // JWT-SVID §3 checks typ with its own rule and message, in validateJwtSvid.
    d = decodeJws(token, null, MAX_JWT_BYTES);
  } catch (e) {
    throw fail(`unable to parse JWT token: ${(e as Error).message.replace(/^jws: /, '')}`, e);
  }
  return { header: d.header, claims: d.payload, input: d.input, signature: d.signature };
}

function audienceList(aud: unknown): string[] | undefined {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.length <= MAX_AUDIENCES && aud.every((a) => typeof a === 'string')) return aud as string[];
  return undefined;
}

/**
 * Validates a JWT-SVID (go-spiffe `jwtsvid.ParseAndValidate`): allowed algorithm, `typ`,
 * `kid` from the bundle of the subject's trust domain, signature, `exp` at instant `at`,
 * and one of `audiences`.
 */
export function validateJwtSvid(token: string, bundles: BundleSet, audiences: readonly string[], at: Date): JwtSvid {
  const { header, claims, input, signature } = decodeJwt(token);
  if (header.typ !== undefined && header.typ !== 'JWT' && header.typ !== 'JOSE') throw fail('token header type not equal to either JWT or JOSE');
  const kid = header.kid;
  if (typeof kid !== 'string' || kid === '') throw fail('token header missing key id');
  if (claims.sub === undefined || claims.sub === '') throw fail('token missing subject claim');
  if (typeof claims.sub !== 'string') throw fail('token has an invalid subject claim: not a string');
  let id: SpiffeId;
  try {
    id = parseSpiffeId(claims.sub);
  } catch (e) {
    throw fail(`token has an invalid subject claim: ${(e as Error).message}`, e);
  }
  const bundle = bundles.get(id.trustDomain);
  if (!bundle) throw fail(`no bundle found for trust domain "${id.trustDomain}"`);
  const key = bundle.jwtAuthorities.get(kid);
  if (!key) throw fail(`no JWT authority "${kid}" found for trust domain "${id.trustDomain}"`);
  const spec = JWT_ALGORITHMS.get(header.alg as string)!;
  // No algorithm confusion: the bundle key's type and curve must be the ones `alg` names.
  if (!keyFits(spec, key)) throw fail(`unable to get claims from token: key "${kid}" cannot verify ${String(header.alg)}`);
  let ok = false;
  try {
    ok = verify(spec.hash, Buffer.from(input), signOpts(spec, key), signature);
  } catch {
    ok = false;
  }
  if (!ok) throw fail('unable to get claims from token: signature verification failed');
  if (claims.exp === undefined) throw fail('token missing exp claim');
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw fail('token has an invalid exp claim');
  const nowSec = at.getTime() / 1000;
  if (nowSec >= claims.exp) throw fail('token has expired');
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || nowSec < claims.nbf)) throw fail('token is not valid yet');
  const aud = audienceList(claims.aud);
  if (!aud || aud.length === 0) throw fail('token has an invalid aud claim');
  if (!aud.some((a) => audiences.includes(a))) {
    throw fail(`expected audience in ${JSON.stringify(audiences)} (audience=${JSON.stringify(aud)})`);
  }
  return { token, id, audience: aud, expiresAt: new Date(claims.exp * 1000), claims, header };
}
