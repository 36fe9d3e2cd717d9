/**
 * The admin client is typed from the generated service descriptors (issue 8 §2): a misspelled
 * method, a wrong request field or a wrong response field does not compile. `make test` compiles
 * test/ with tsc before running anything, so each `@ts-expect-error` below fails the build if the
 * line under it ever type-checks (an untyped client would make every one of them "unused").
 * The runtime part checks the client exposes exactly the unary methods of the descriptors.
 */
import { describe, expect, it } from 'vitest';
import { adminClients } from '../../src/cli/admin-client.js';
import { AdminService } from '../../src/gen/writ/v1/admin_pb.js';
import { RevocationService } from '../../src/gen/writ/v1/revocation_pb.js';

type Clients = ReturnType<typeof adminClients>;

// Compile-time only: never called (referenced below so it is not unused).
async function typeChecks(c: Clients): Promise<void> {
  const t = await c.admin.createJoinToken({ ttl: 60, spiffeId: 'spiffe://example.org/a' });
  const _token: string = t.token;
  // @ts-expect-error a misspelled method does not exist
  await c.admin.createJoinTokn({ ttl: 60 });
  // @ts-expect-error a request field of the wrong type
  await c.admin.createJoinToken({ ttl: '60' });
  // @ts-expect-error a request field the message does not have
  await c.admin.createJoinToken({ lifetime: 60 });
  // @ts-expect-error a response field the message does not have
  const _nope: string = t.secret;
  // @ts-expect-error a response field read as the wrong type
  const _n: number = t.token;
  // @ts-expect-error a method of another service is not on this client
  await c.admin.revoke({});
  void [_token, _nope, _n];
}

void typeChecks;

describe('typed admin client', () => {
  it('exposes exactly the unary methods of each service descriptor, by their local names', () => {
    const c = adminClients('/nonexistent/admin.sock');
    for (const [client, svc] of [
      [c.admin, AdminService],
      [c.revocation, RevocationService],
    ] as const) {
      const unary = svc.methods.filter((m) => m.methodKind === 'unary').map((m) => m.localName);
      expect(Object.keys(client).sort()).toEqual([...unary].sort());
      expect(unary.length).toBeGreaterThan(0);
    }
  });
});
