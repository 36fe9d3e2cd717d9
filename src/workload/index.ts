/** The relying-party Workload API client (README "A Node relying party"). */
export { X509Source, socketTarget, backoffDelay, x509Update, type SourceStatus, type SourceOptions, type X509SvidHeld } from './source.js';
export { JWTSource } from './jwt.js';
export {
  authorizeAny,
  authorizeID,
  authorizeMemberOf,
  authorizeOneOf,
  authorizePeer,
  secureContext,
  tlsClientOptions,
  tlsServer,
  type Authorizer,
} from './tls.js';
