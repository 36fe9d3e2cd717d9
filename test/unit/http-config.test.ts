/** `http_listen`, `http_public_url` and `status_lists`: off by default, the three layers, and every rule. */
import { describe, expect, it } from 'vitest';
import { loadRawConfig, sectionSettings } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import type { StatusListSettings } from '../../src/issuance/status-list-publisher.js';
import { serverSettings } from '../../src/server/settings.js';

function settings(raw: Record<string, unknown>, flags: { httpListen?: string } = {}, env: NodeJS.ProcessEnv = {}) {
  const l = loadRawConfig(flags, env);
  return serverSettings({ ...raw, ...l.raw }, l.problems);
}

function problems(raw: Record<string, unknown>): string[] {
  try {
    settings(raw);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

describe('HTTPS listener configuration', () => {
  it('is off by default; status lists default to a 60 s ttl and 24 h tokens', () => {
    const s = settings({});
    expect(s.httpListen).toBeUndefined();
    expect(s.httpPublicUrl).toBeUndefined();
    expect(sectionSettings<StatusListSettings>(s, 'status_lists')).toEqual({ ttlSeconds: 60, lifetimeSeconds: 86400 });
  });

  it('takes http_listen from the file, WRIT_HTTP_LISTEN, then --http-listen', () => {
    expect(settings({ http_listen: '127.0.0.1:1000' }).httpListen).toEqual({ host: '127.0.0.1', port: 1000 });
    expect(settings({ http_listen: '127.0.0.1:1000' }, {}, { WRIT_HTTP_LISTEN: '127.0.0.1:2000' }).httpListen?.port).toBe(2000);
    expect(settings({ http_listen: '127.0.0.1:1000' }, { httpListen: '[::1]:3000' }, { WRIT_HTTP_LISTEN: '127.0.0.1:2000' }).httpListen).toEqual({
      host: '::1',
      port: 3000,
    });
  });

  it('normalises http_public_url and adds its host and the listen host to the serving certificate', () => {
    const s = settings({ http_listen: '10.0.0.7:8444', http_public_url: 'https://status.example.com/writ/' });
    expect(s.httpPublicUrl).toBe('https://status.example.com/writ');
    expect(s.servingNames.dns).toContain('status.example.com');
    expect(s.servingNames.ips).toContain('10.0.0.7');
    expect(settings({ http_listen: '0.0.0.0:8444', http_public_url: 'https://[::1]:8444' }).servingNames.ips).toContain('::1');
    expect(settings({ http_listen: '127.0.0.1:8444', http_public_url: 'https://issuer.example:443' }).httpPublicUrl).toBe('https://issuer.example');
  });

  it.each([
    [{ http_listen: 'nowhere' }, /http_listen: "nowhere" is not host:port/],
    [{ http_listen: '0.0.0.0:8444' }, /http_public_url is required when http_listen binds every address \(0\.0\.0\.0\)/],
    [{ http_public_url: 'https://a.example' }, /http_public_url needs http_listen/],
    [{ http_listen: '127.0.0.1:1', http_public_url: 'http://a.example' }, /must be an https URL/],
    [{ http_listen: '127.0.0.1:1', http_public_url: 'https://u:p@a.example' }, /must not carry user information/],
    [{ http_listen: '127.0.0.1:1', http_public_url: 'https://a.example/?x=1' }, /must not carry a query or a fragment/],
    [{ http_listen: '127.0.0.1:1', http_public_url: 'https://a.example/#f' }, /must not carry a query or a fragment/],
    [{ http_listen: '127.0.0.1:1', http_public_url: 'not a url' }, /is not a URL/],
    [{ status_lists: { ttl: '25h' } }, /status_lists.ttl must be between 1s and 24h/],
    [{ status_lists: { ttl: '1h', lifetime: '90m' } }, /status_lists.lifetime must be at least twice status_lists.ttl/],
    [{ status_lists: { tll: '1m' } }, /unknown key status_lists.tll/],
  ])('refuses %j', (raw, why) => {
    expect(problems(raw).join('\n')).toMatch(why);
  });
});
