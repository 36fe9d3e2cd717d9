/**
 * The typed client of writ.v1.ConsoleService, generated from proto/writ/v1/console.proto (the same
 * descriptors the issuer serves), over the Connect protocol on the page's own origin. The session
 * is an HttpOnly cookie the script never sees; the browser sends it, and the Origin header the
 * issuer checks, by itself.
 */
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-web';
import { ApprovalService } from '../../src/gen/writ/v1/approval_pb';
import { ConsoleService } from '../../src/gen/writ/v1/console_pb';

const transport = createConnectTransport({ baseUrl: location.origin, useBinaryFormat: false });
export const client = createClient(ConsoleService, transport);
/** The approver's calls; the issuer takes the approver from the session. */
export const approvals = createClient(ApprovalService, transport);

/** A failed call in words; `signedOut` when the session is gone (expired, signed out elsewhere). */
export function describe(e: unknown): { message: string; signedOut: boolean } {
  const c = ConnectError.from(e);
  return { message: c.rawMessage || c.message, signedOut: c.code === Code.Unauthenticated };
}
