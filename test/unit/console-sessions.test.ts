/** Console sessions and the `console:` settings: expiry, sign-out, bounded table, cookie parsing, configuration problems. */
import { describe, expect, it } from 'vitest';
import { operatorCheck } from '../../src/server/console/index.js';
import { ConsoleSessions, cookieValue, setCookie } from '../../src/server/console/sessions.js';
import { parseConsole } from '../../src/server/console/settings.js';

const alice = { iss: 'https://idp.example', sub: 'alice', groups: ['eng'] };

describe('console sessions', () => {
  it('ends at the TTL or the ID token expiry, whichever is first, and never later', () => {
    let t = 1_000_000;
    const s = new ConsoleSessions(15 * 60_000, () => t);
    const a = s.create(alice, false, 'tok', t + 10 * 60_000);
    const b = s.create(alice, false, 'tok');
    expect(a.session.expiresAt).toBe(t + 10 * 60_000);
    expect(b.session.expiresAt).toBe(t + 15 * 60_000);
    t += 10 * 60_000 - 1;
    expect(s.get(a.token)).toBeDefined();
    t += 1;
    expect(s.get(a.token)).toBeUndefined();
    expect(s.get(b.token)).toBeDefined();
    t += 5 * 60_000;
    expect(s.get(b.token)).toBeUndefined();
  });

  it('forgets a signed-out session and refuses malformed or unknown cookies', () => {
    const s = new ConsoleSessions(60_000, () => 0);
    const a = s.create(alice, true);
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    s.delete(a.token);
    expect(s.get(a.token)).toBeUndefined();
    for (const bad of [undefined, '', 'x', `${a.token}=`, 'A'.repeat(43), 'A'.repeat(44)]) expect(s.get(bad)).toBeUndefined();
  });

  it('holds a bounded number: expired ones go first, then the oldest', () => {
    let t = 0;
    const s = new ConsoleSessions(1000, () => t, 3);
    const old = s.create(alice, false);
    t = 500;
    const mid = [s.create(alice, false), s.create(alice, false)];
    t = 1200; // `old` expired
    const next = s.create(alice, false);
    expect(s.size).toBe(3);
    expect(s.get(old.token)).toBeUndefined();
    const newest = s.create(alice, false); // full of live sessions: the oldest live one goes
    expect(s.get(mid[0]!.token)).toBeUndefined();
    expect(s.get(mid[1]!.token)).toBeDefined();
    expect(s.get(next.token)).toBeDefined();
    expect(s.get(newest.token)).toBeDefined();
  });

  it('reads one cookie of a Cookie header and writes host-only, Secure, HttpOnly cookies', () => {
    expect(cookieValue('a=1; __Host-writ-console=abc; b=2', '__Host-writ-console')).toBe('abc');
    expect(cookieValue('x__Host-writ-console=abc', '__Host-writ-console')).toBeUndefined();
    expect(cookieValue(undefined, 'a')).toBeUndefined();
    expect(setCookie('__Host-x', 'v', 90.7, 'Strict')).toBe('__Host-x=v; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=90');
  });
});

describe('console settings', () => {
  it('defaults: on, 15 minutes, no operators', () => {
    const p: string[] = [];
    expect(parseConsole(undefined, p)).toEqual({ enabled: true, sessionTtlMs: 900_000, operatorSubjects: [], operatorGroups: [] });
    expect(p).toEqual([]);
  });

  it('reports every problem at once', () => {
    const p: string[] = [];
    parseConsole({ enabled: 'yes', session_ttl: '13h', operators: { subjects: ['alice'], teams: [] }, colour: 'blue' }, p);
    expect(p).toEqual(
      expect.arrayContaining([
        'unknown key console.colour',
        'console.enabled must be true or false',
        'console.session_ttl must be from 1m to 12h',
        'unknown key console.operators.teams',
        'console.operators.subjects: alice must be ISSUER#SUBJECT',
      ]),
    );
  });

  it('names operators by ISSUER#SUBJECT or by group', () => {
    const isOp = operatorCheck({ operatorSubjects: ['https://idp.example#olga'], operatorGroups: ['writ-operators'] });
    expect(isOp({ ...alice, sub: 'olga' })).toBe(true);
    expect(isOp({ ...alice, groups: ['writ-operators'] })).toBe(true);
    expect(isOp(alice)).toBe(false);
    expect(isOp({ ...alice, iss: 'https://other.example', sub: 'olga' })).toBe(false);
  });
});
