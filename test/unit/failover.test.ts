/** Client fail-over between issuer replicas (agent/failover.ts): which failures move on, and how addresses are given. */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { GrpcCallError } from '../../src/agent/attest-client.js';
import { replicaFailed, serverAddresses, withFailover } from '../../src/agent/failover.js';
import { UsageError } from '../../src/config/options.js';

const unreachable = new GrpcCallError(grpc.status.UNAVAILABLE, 'cannot reach the issuer at a:1: connection refused');
const storeDown = new GrpcCallError(grpc.status.UNAVAILABLE, 'datastore unavailable', 'ERR_STORE');
const denied = new GrpcCallError(grpc.status.PERMISSION_DENIED, 'join token already used', 'ERR_ATTESTATION_FAILED');

describe('failover between issuer replicas', () => {
  it('reads addresses comma-separated and repeated, each HOST:PORT, none twice', () => {
    expect(serverAddresses(['a:1,b:2', 'c:3'])).toEqual(['a:1', 'b:2', 'c:3']);
    expect(serverAddresses(['[::1]:8443'])).toEqual(['[::1]:8443']);
    expect(() => serverAddresses(['a:1,'])).toThrow(UsageError);
    expect(() => serverAddresses(['a'])).toThrow(/--server must be HOST:PORT/);
    expect(() => serverAddresses(['a:1', 'a:1'])).toThrow(/names an address twice/);
  });

  it('moves on when a replica is unreachable, timed out or without its datastore, never when it refused on the merits', () => {
    expect(replicaFailed(unreachable)).toBe(true);
    expect(replicaFailed(storeDown)).toBe(true);
    expect(replicaFailed(new GrpcCallError(grpc.status.DEADLINE_EXCEEDED, 'the issuer at a:1 did not answer in time'))).toBe(true);
    expect(replicaFailed(denied)).toBe(false);
    expect(replicaFailed(new GrpcCallError(grpc.status.UNAVAILABLE, 'rate limited', 'ERR_RATE_LIMITED'))).toBe(false);
    expect(replicaFailed(new Error('bad bundle'))).toBe(false);
  });

  it('tries each replica in order and returns the first answer', async () => {
    const tried: string[] = [];
    const skipped: string[] = [];
    const out = await withFailover(
      ['a:1', 'b:2', 'c:3'],
      async (s) => {
        tried.push(s);
        if (s === 'a:1') throw unreachable;
        if (s === 'b:2') throw storeDown;
        return `served by ${s}`;
      },
      (s) => skipped.push(s),
    );
    expect(out).toBe('served by c:3');
    expect(tried).toEqual(['a:1', 'b:2', 'c:3']);
    expect(skipped).toEqual(['a:1', 'b:2']);
  });

  it('stops at a refusal, and names every address when none could serve', async () => {
    const tried: string[] = [];
    await expect(
      withFailover(['a:1', 'b:2'], async (s) => {
        tried.push(s);
        throw denied;
      }),
    ).rejects.toBe(denied);
    expect(tried).toEqual(['a:1']);
    const err = await withFailover(['a:1', 'b:2'], async () => {
      throw unreachable;
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcCallError);
    expect((err as GrpcCallError).message).toMatch(/no issuer replica could serve the call \(tried a:1, b:2\)/);
  });
});
