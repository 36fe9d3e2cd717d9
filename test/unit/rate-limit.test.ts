import { describe, expect, it } from 'vitest';
import { PeerRateLimiter, peerHost, MAX_TRACKED_PEERS } from '../../src/server/rate-limit.js';

describe('PeerRateLimiter', () => {
  it('allows the burst, then the steady rate, per peer', () => {
    let t = 0;
    const l = new PeerRateLimiter(2, 3, () => t);
    expect([1, 2, 3, 4].map(() => l.take('a'))).toEqual([true, true, true, false]);
    expect(l.take('b')).toBe(true);
    t += 500;
    expect(l.take('a')).toBe(true);
    expect(l.take('a')).toBe(false);
  });
  it('remembers a bounded number of peers', () => {
    const l = new PeerRateLimiter(1, 1, () => 0);
    for (let i = 0; i <= MAX_TRACKED_PEERS; i++) l.take(`p${i}`);
    // p0 was forgotten, so it gets a fresh bucket; the most recent peer is still limited.
    expect(l.take('p0')).toBe(true);
    expect(l.take(`p${MAX_TRACKED_PEERS}`)).toBe(false);
  });
  it.each([
    ['ipv4:127.0.0.1:5000', '127.0.0.1'],
    ['ipv6:[::1]:5000', '::1'],
    ['10.0.0.1:1', '10.0.0.1'],
  ])('peerHost(%s) = %s', (peer, host) => expect(peerHost(peer)).toBe(host));
});
