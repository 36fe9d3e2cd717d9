/** gRPC GrantService (public port): CreateGrant for principals with an OIDC token. */
import { create } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { CreateGrantResponseSchema, type CreateGrantRequest } from '../../gen/writ/v1/grant_pb.js';
import type { GrantIssuer } from '../../issuance/grants.js';
import { unary } from '../unary.js';
import type { RateLimiter } from '../rate-limit.js';

export function grantService(deps: { grants: GrantIssuer; logger: Logger; limiter?: RateLimiter }): grpc.UntypedServiceImplementation {
  const { grants, logger } = deps;
  return {
    createGrant: unary(
      logger,
      'CreateGrant',
      async (req: CreateGrantRequest) => {
        const perms = (ps: ReadonlyArray<{ action: string; resource: string }>) => ps.map((p) => ({ action: p.action, resource: p.resource }));
        const g = await grants.create({
          subjectToken: req.subjectToken,
          subjectTokenType: req.subjectTokenType,
          taskId: req.taskId,
          goal: req.goal,
          ttlSeconds: req.ttlSeconds,
          scope: perms(req.scope),
          boundaries: perms(req.boundaries),
          escalate: perms(req.escalate),
          maxDepth: req.maxDepth,
          delegateJkt: req.delegateJkt,
        });
        logger.info({ grantId: g.jti, principal: `${g.principal.iss}#${g.principal.sub}`, task: req.taskId, snapshot: g.snapshot }, 'root grant created');
        return create(CreateGrantResponseSchema, {
          grant: g.grant,
          grantId: g.jti,
          expiresAt: BigInt(g.expiresAt),
          principalIss: g.principal.iss,
          principalSub: g.principal.sub,
          policySnapshot: g.snapshot,
          policies: [...g.policies],
        });
      },
      deps.limiter,
    ),
  };
}
