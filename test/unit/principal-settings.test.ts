/**
 * `parsePrincipals` (src/principal/settings.ts): one `principals:` list → settings, every
 * problem pushed at once, nothing thrown; the same messages as config.ts's inline loop had, plus
 * `jwks_origins` and `max_key_age`.
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { sectionSettings } from '../../src/config/config.js';
import { serverSettings } from '../../src/server/settings.js';
import { parsePrincipals, principalsSection } from '../../src/principal/settings.js';

const parse = (yaml: string) => {
  const problems: string[] = [];
  const out = parsePrincipals(parseYaml(yaml), problems);
  return { out, problems };
};
const problemsOf = (yaml: string) => parse(yaml).problems;

describe('principal settings: parsePrincipals', () => {
  it('reads a valid list with every key', () => {
    const { out, problems } = parse(`
- { issuer: https://idp.example.com, audience: writ }
- issuer: https://accounts.example.com
  audience: writ
  groups_claim: roles
  jwks_origins: [https://keys.example.com, "https://keys2.example.com:8443/", "HTTPS://KEYS3.EXAMPLE.COM:443"]
  max_key_age: 1h30m
- { issuer: http://127.0.0.1:9000, audience: writ, jwks_origins: ["http://127.0.0.2:9001"] }
- { issuer: "http://[::1]:9000", audience: writ }
- { issuer: http://localhost:9000/realms/dev, audience: writ, max_key_age: 5m }
- { issuer: corp, audience: writ, jwks_file: corp.jwks }
`);
    expect(problems).toEqual([]);
    expect(out).toEqual([
      { issuer: 'https://idp.example.com', audience: 'writ', groupsClaim: 'groups' },
      {
        issuer: 'https://accounts.example.com',
        audience: 'writ',
        groupsClaim: 'roles',
        jwksOrigins: ['https://keys.example.com', 'https://keys2.example.com:8443', 'https://keys3.example.com'],
        maxKeyAgeMs: 5400_000,
      },
      { issuer: 'http://127.0.0.1:9000', audience: 'writ', groupsClaim: 'groups', jwksOrigins: ['http://127.0.0.2:9001'] },
      { issuer: 'http://[::1]:9000', audience: 'writ', groupsClaim: 'groups' },
      { issuer: 'http://localhost:9000/realms/dev', audience: 'writ', groupsClaim: 'groups', maxKeyAgeMs: 300_000 },
      { issuer: 'corp', audience: 'writ', groupsClaim: 'groups', jwksFile: resolve('corp.jwks') },
    ]);
  });

  it('an absent or null list is empty; anything else than a list is a problem', () => {
    expect(parse('').out).toEqual([]);
    expect(parse('null').problems).toEqual([]);
    for (const y of ['{ issuer: https://a }', 'https://a', '3']) expect(problemsOf(y), y).toEqual(['principals must be a list']);
  });

  it('is what the server configuration reads for principals: (the principals section)', () => {
    const yaml = `
- { issuer: https://idp.example.com, audience: writ }
- { issuer: http://127.0.0.1:9000, audience: writ, groups_claim: roles }
- { issuer: corp, audience: writ, jwks_file: /etc/writ/corp.jwks }
`;
    expect(parse(yaml).out).toEqual(sectionSettings(serverSettings({ principals: parseYaml(yaml) }), principalsSection.key));
    expect(parse(yaml).out).toEqual([
      { issuer: 'https://idp.example.com', audience: 'writ', groupsClaim: 'groups' },
      { issuer: 'http://127.0.0.1:9000', audience: 'writ', groupsClaim: 'roles' },
      { issuer: 'corp', audience: 'writ', jwksFile: '/etc/writ/corp.jwks', groupsClaim: 'groups' },
    ]);
  });

  it.each([
    ['an item that is not a mapping', '- https://idp.example.com', ['principals[0] must be a mapping']],
    ['a list item', '- [https://idp.example.com, writ]', ['principals[0] must be a mapping']],
    ['no audience', '- { issuer: https://a.example }', ['principals[0] needs issuer and audience']],
    ['no issuer', '- { audience: writ }', ['principals[0] needs issuer and audience']],
    ['an issuer that is not a string', '- { issuer: 7, audience: writ }', ['principals[0].issuer must be a string', 'principals[0] needs issuer and audience']],
    [
      'an audience that is a list',
      '- { issuer: https://a.example, audience: [a, b] }',
      ['principals[0].audience must be a string', 'principals[0] needs issuer and audience'],
    ],
    [
      'a groups_claim that is not a string',
      '- { issuer: https://a.example, audience: w, groups_claim: true }',
      ['principals[0].groups_claim must be a string'],
    ],
    [
      'a jwks_file that is not a string',
      '- { issuer: corp, audience: w, jwks_file: 1 }',
      ['principals[0].jwks_file must be a string', 'principals[0].issuer must be a URL'],
    ],
    ['an unknown key', '- { issuer: https://a.example, audience: w, colour: red }', ['unknown key principals[0].colour']],
    ['a misspelt new key', '- { issuer: https://a.example, audience: w, max_keys_age: 1h }', ['unknown key principals[0].max_keys_age']],
    [
      'an issuer listed twice',
      '- { issuer: https://a.example, audience: w }\n- { issuer: https://a.example, audience: v }',
      ['principals[1].issuer https://a.example is listed twice'],
    ],
    [
      'http discovery off loopback',
      '- { issuer: http://idp.example.com, audience: writ }',
      ['principals[0].issuer must be https (http only on loopback) for discovery, or give jwks_file'],
    ],
    [
      'http discovery on a private address',
      '- { issuer: "http://10.0.0.1:9000", audience: writ }',
      ['principals[0].issuer must be https (http only on loopback) for discovery, or give jwks_file'],
    ],
    [
      'http discovery on IPv4-mapped loopback',
      '- { issuer: "http://[::ffff:127.0.0.1]", audience: writ }',
      ['principals[0].issuer must be https (http only on loopback) for discovery, or give jwks_file'],
    ],
    ['an issuer that is not a URL', '- { issuer: idp.example.com, audience: writ }', ['principals[0].issuer must be a URL']],
    [
      'jwks_origins not a list',
      '- { issuer: https://a.example, audience: w, jwks_origins: https://k.example }',
      ['principals[0].jwks_origins must be a list of origins, e.g. [https://keys.example.com]'],
    ],
    [
      'jwks_origins empty',
      '- { issuer: https://a.example, audience: w, jwks_origins: [] }',
      ["principals[0].jwks_origins must not be empty (leave it out to allow only the issuer's origin)"],
    ],
    [
      'a jwks origin with a path',
      '- { issuer: https://a.example, audience: w, jwks_origins: [https://k.example/jwks] }',
      ['principals[0].jwks_origins[0] must be an origin like https://keys.example.com (scheme, host and port only)'],
    ],
    [
      'a jwks origin with a query',
      '- { issuer: https://a.example, audience: w, jwks_origins: ["https://k.example?"] }',
      ['principals[0].jwks_origins[0] must be an origin like https://keys.example.com (scheme, host and port only)'],
    ],
    [
      'a jwks origin with credentials',
      '- { issuer: https://a.example, audience: w, jwks_origins: ["https://u:p@k.example"] }',
      ['principals[0].jwks_origins[0] must be an origin like https://keys.example.com (scheme, host and port only)'],
    ],
    [
      'a jwks origin that is a host name',
      '- { issuer: https://a.example, audience: w, jwks_origins: [k.example] }',
      ['principals[0].jwks_origins[0] must be an origin like https://keys.example.com (scheme, host and port only)'],
    ],
    [
      'a file: jwks origin',
      '- { issuer: https://a.example, audience: w, jwks_origins: ["file:///etc"] }',
      ['principals[0].jwks_origins[0] must be an origin like https://keys.example.com (scheme, host and port only)'],
    ],
    [
      'an http jwks origin off loopback',
      '- { issuer: https://a.example, audience: w, jwks_origins: ["http://169.254.169.254"] }',
      ['principals[0].jwks_origins[0] must be https (http only on loopback)'],
    ],
    [
      'jwks_origins with jwks_file',
      '- { issuer: corp, audience: w, jwks_file: c.jwks, jwks_origins: [https://k.example] }',
      ['principals[0].jwks_origins applies to discovery only, not with jwks_file'],
    ],
    [
      'max_key_age with jwks_file',
      '- { issuer: corp, audience: w, jwks_file: c.jwks, max_key_age: 1h }',
      ['principals[0].max_key_age applies to discovery only: keys from jwks_file have no maximum age'],
    ],
    [
      'max_key_age in days',
      '- { issuer: https://a.example, audience: w, max_key_age: 1d }',
      ['principals[0].max_key_age: invalid duration "1d" (use e.g. 90s, 5m, 1h30m)'],
    ],
    ['max_key_age as a number', '- { issuer: https://a.example, audience: w, max_key_age: 3600 }', ['principals[0].max_key_age must be a string']],
    [
      'max_key_age below the refresh interval',
      '- { issuer: https://a.example, audience: w, max_key_age: 4m59s }',
      ['principals[0].max_key_age must be at least 5m (keys are refreshed every 5m)'],
    ],
    [
      'max_key_age zero',
      '- { issuer: https://a.example, audience: w, max_key_age: 0s }',
      ['principals[0].max_key_age must be at least 5m (keys are refreshed every 5m)'],
    ],
  ])('refuses %s', (_n, yaml, expected) => {
    expect(problemsOf(yaml)).toEqual(expected);
  });

  it('reports every problem of every item at once, and keeps the problems it was given', () => {
    const problems = ['earlier problem'];
    parsePrincipals(
      parseYaml(`
- { issuer: http://idp.example.com, audience: writ }
- { issuer: https://b.example, colour: red, max_key_age: soon }
- 3
`),
      problems,
    );
    expect(problems).toEqual([
      'earlier problem',
      'principals[0].issuer must be https (http only on loopback) for discovery, or give jwks_file',
      'unknown key principals[1].colour',
      'principals[1] needs issuer and audience',
      'principals[1].max_key_age: invalid duration "soon" (use e.g. 90s, 5m, 1h30m)',
      'principals[2] must be a mapping',
    ]);
  });
});
