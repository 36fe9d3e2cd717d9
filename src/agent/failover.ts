/**
 * Several issuer replicas for one call: `--server a:1,b:2` (or the option repeated) names them,
 * tried in order; a call moves to the next replica only when the one it asked could not serve
 * it (unreachable, timed out, or answering that its datastore is unavailable), never when it
 * refused on the merits (bad evidence, denied by policy, a consumed join token). Retrying is
 * safe because nothing is issued twice for one input: a join token is consumed once across
 * replicas, and a TPM handshake draws a new nonce each time.
 */
import * as grpc from '@grpc/grpc-js';
import { UsageError } from '../config/options.js';
import { checkServerAddress, GrpcCallError } from './attest-client.js';

/** The issuer addresses of a `--server` option: comma-separated, repeatable, each HOST:PORT, no duplicates. */
export function serverAddresses(values: readonly string[]): string[] {
  const all = values.flatMap((v) => v.split(',')).map((s) => s.trim());
  if (all.length === 0 || all.some((s) => s === '')) throw new UsageError('--server must be HOST:PORT, or several separated by commas');
  const out = all.map(checkServerAddress);
  if (new Set(out).size !== out.length) throw new UsageError('--server names an address twice');
  return out;
}

/** Whether another replica may serve what this failure stopped. */
export function replicaFailed(e: unknown): boolean {
  if (!(e instanceof GrpcCallError)) return false;
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return true;
  // UNAVAILABLE: unreachable (no writ error code) or the replica's datastore is down (ERR_STORE).
  return e.code === grpc.status.UNAVAILABLE && (e.writCode === undefined || e.writCode === 'ERR_STORE');
}

/**
 * `call` on each address in turn until one serves it; what the last replica said when none
 * could, with every address tried named.
 */
export async function withFailover<T>(
  servers: readonly string[],
  call: (server: string) => Promise<T>,
  onFailover?: (server: string, e: unknown) => void,
): Promise<T> {
  let last: unknown;
  for (const [i, server] of servers.entries()) {
    try {
      return await call(server);
    } catch (e) {
      if (!replicaFailed(e) || i === servers.length - 1) {
        if (servers.length > 1 && replicaFailed(e)) {
          const err = e as GrpcCallError;
          throw new GrpcCallError(err.code, `no issuer replica could serve the call (tried ${servers.join(', ')}): ${err.details}`, err.writCode);
        }
        throw e;
      }
      last = e;
      onFailover?.(server, e);
    }
  }
  throw last;
}
