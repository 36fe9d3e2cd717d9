import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRawConfig, sectionSettings } from '../../src/config/config.js';
import { serverSettings } from '../../src/server/settings.js';
import { parseDuration } from '../../src/config/duration.js';
import { ConfigError } from '../../src/errors.js';
import type { RevocationSettings } from '../../src/issuance/revocations.js';
import type { AuditSettings } from '../../src/issuance/audit.js';
import { tmpDir } from '../helpers/tmp.js';

function settingsFrom(yaml: string | undefined, flags = {}, env: NodeJS.ProcessEnv = {}) {
  const f: Record<string, string> = { ...flags };
  if (yaml !== undefined) {
    const p = join(tmpDir(), 'writ.yaml');
    writeFileSync(p, yaml);
    f.config = p;
  }
  const { raw, problems } = loadRawConfig(f, env);
  return serverSettings(raw, problems);
}

describe('config', () => {
  it('has working defaults', () => {
    const s = settingsFrom(undefined);
    expect(s.trustDomain).toBe('writ.local');
    expect(s.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(s.svid.x509TtlMs).toBe(3600_000);
    expect(s.svid.jwtTtlMs).toBe(300_000);
    expect(s.ca.ttlMs).toBe(24 * 3600_000);
    expect(s.adminSocket.endsWith('/.writ/admin.sock')).toBe(true);
  });

  it('reports every problem at once', () => {
    let err: ConfigError | undefined;
    try {
      settingsFrom('trust_domain: Bad_TD!\nlisten: nowhere\nsvid:\n  x509_ttl: forever\n  jwt_alg: HS256\nca:\n  key_type: rsa\nbogus: 1\n');
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.problems.join('\n');
    for (const needle of ['trust_domain', 'listen', 'svid.x509_ttl', 'svid.jwt_alg', 'ca.key_type', 'unknown key bogus']) expect(text).toContain(needle);
    expect(err!.problems.length).toBeGreaterThanOrEqual(6);
  });

  it('flags override the environment, which overrides the file', () => {
    const yaml = 'trust_domain: file.example\nlisten: 127.0.0.1:1000\nlog_level: warn\n';
    const s = settingsFrom(yaml, { listen: '127.0.0.1:3000' }, { WRIT_LISTEN: '127.0.0.1:2000', WRIT_TRUST_DOMAIN: 'env.example' });
    expect(s.listen.port).toBe(3000);
    expect(s.trustDomain).toBe('env.example');
    expect(s.logLevel).toBe('warn');
  });

  it('refuses SVID TTLs longer than the CA TTL', () => {
    expect(() => settingsFrom('ca:\n  ttl: 1h\nsvid:\n  x509_ttl: 2h\n')).toThrow(/never outlive/);
  });

  it('caps Watch streams with defaults, or as configured, and refuses caps out of range', () => {
    const dflt = sectionSettings<RevocationSettings>(settingsFrom(undefined), 'revocation').watch;
    expect(dflt).toEqual({ maxStreams: 20_000, maxStreamsPerPeer: 64, maxBufferedBytes: 64 * 1024 * 1024 });
    const set = sectionSettings<RevocationSettings>(
      settingsFrom('revocation:\n  watch: { max_streams: 10, max_streams_per_peer: 2, max_buffered_bytes: 65536 }\n'),
      'revocation',
    ).watch;
    expect(set).toEqual({ maxStreams: 10, maxStreamsPerPeer: 2, maxBufferedBytes: 65536 });
    expect(() => settingsFrom('revocation:\n  watch: { max_streams: 0, max_buffered_bytes: 1024, bogus: 1 }\n')).toThrow(
      /revocation\.watch\.max_streams must be an integer 1\.\.1000000[\s\S]*revocation\.watch\.max_buffered_bytes must be an integer 65536\.\./,
    );
  });

  it('reads audit.checkpoint_interval (default 1m) and refuses one out of range or an unknown audit key', () => {
    expect(sectionSettings<AuditSettings>(settingsFrom(undefined), 'audit')).toEqual({ checkpointIntervalMs: 60_000 });
    expect(sectionSettings<AuditSettings>(settingsFrom('audit:\n  checkpoint_interval: 5m\n'), 'audit')).toEqual({ checkpointIntervalMs: 300_000 });
    expect(() => settingsFrom('audit:\n  checkpoint_interval: 500ms\n')).toThrow(/audit\.checkpoint_interval must be between 1s and 24h/);
    expect(() => settingsFrom('audit:\n  checkpoint_interval: 25h\n')).toThrow(/audit\.checkpoint_interval must be between 1s and 24h/);
    expect(() => settingsFrom('audit:\n  interval: 1m\n')).toThrow(/unknown key audit\.interval/);
  });

  it('rejects unknown nested keys', () => {
    expect(() => settingsFrom('svid:\n  x509ttl: 1h\n')).toThrow(/unknown key svid.x509ttl/);
  });

  it('parses durations', () => {
    expect(parseDuration('1h30m')).toBe(5400_000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(() => parseDuration('1d')).toThrow();
    expect(() => parseDuration('')).toThrow();
  });
});

describe('config: principals and grants', () => {
  it('accepts https issuers, http on loopback, and static JWKS files', () => {
    const s = settingsFrom(
      'principals:\n  - { issuer: https://idp.example.com, audience: writ }\n  - { issuer: http://127.0.0.1:9000, audience: writ, groups_claim: roles }\n  - { issuer: corp, audience: writ, jwks_file: /etc/writ/corp.jwks }\ngrants: { default_ttl: 30m, max_ttl: 8h }\n',
    );
    expect(sectionSettings(s, 'principals')).toEqual([
      { issuer: 'https://idp.example.com', audience: 'writ', groupsClaim: 'groups' },
      { issuer: 'http://127.0.0.1:9000', audience: 'writ', groupsClaim: 'roles' },
      { issuer: 'corp', audience: 'writ', jwksFile: '/etc/writ/corp.jwks', groupsClaim: 'groups' },
    ]);
    expect(s.grants).toEqual({ defaultTtlMs: 1800_000, maxTtlMs: 8 * 3600_000 });
  });
  it('refuses plain http discovery off loopback, missing audiences, duplicates and unknown keys, all at once', () => {
    let err: ConfigError | undefined;
    try {
      settingsFrom(
        'principals:\n  - { issuer: http://idp.example.com, audience: writ }\n  - { issuer: https://a.example }\n  - { issuer: https://b.example, audience: w, colour: red }\n  - { issuer: https://b.example, audience: w }\ngrants: { default_ttl: 2d, max_ttl: 1h }\n',
      );
    } catch (e) {
      err = e as ConfigError;
    }
    const text = err!.problems.join('\n');
    for (const needle of [
      'principals[0].issuer must be https',
      'principals[1] needs issuer and audience',
      'unknown key principals[2].colour',
      'listed twice',
      'grants.default_ttl',
    ])
      expect(text).toContain(needle);
  });
});
