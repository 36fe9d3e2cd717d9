/** How entries are printed: aligned text, or JSON with snake_case keys. */
import type { Entry } from '../../../gen/writ/v1/admin_pb.js';

export function entryText(e: Entry): string {
  return `${[
    `Entry ID      : ${e.id}`,
    `SPIFFE ID     : ${e.spiffeId}`,
    ...e.selectors.map((s) => `Selector      : ${s.type}:${s.value}`),
    `X509-SVID TTL : ${e.x509SvidTtl ? `${e.x509SvidTtl}s` : 'default'}`,
    `JWT-SVID TTL  : ${e.jwtSvidTtl ? `${e.jwtSvidTtl}s` : 'default'}`,
    ...(e.scopeCeiling.length ? [`Scope ceiling : ${e.scopeCeiling.join(', ')}`] : []),
    ...(e.hint ? [`Hint          : ${e.hint}`] : []),
    `Created       : ${new Date(Number(e.createdAt) * 1000).toISOString()}`,
    '',
  ].join('\n')}\n`;
}

export function entryJson(e: Entry): Record<string, unknown> {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    selectors: e.selectors.map((s) => `${s.type}:${s.value}`),
    x509_svid_ttl: e.x509SvidTtl,
    jwt_svid_ttl: e.jwtSvidTtl,
    scope_ceiling: e.scopeCeiling,
    hint: e.hint,
    created_at: Number(e.createdAt),
  };
}
