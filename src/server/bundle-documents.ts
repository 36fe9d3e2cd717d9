/** The trust bundle serialised for the wire, once per bundle change. */
import { marshalSpiffeBundle, marshalX509Pem, type Bundle } from '../spiffe/bundle.js';

// The CA hands out the same Bundle object until the bundle changes: serialise it once per change.
const documents = new WeakMap<Bundle, { jwks: string; pem: string }>();
export function bundleDocuments(b: Bundle): { jwks: string; pem: string } {
  let d = documents.get(b);
  if (!d) {
    d = { jwks: marshalSpiffeBundle(b), pem: marshalX509Pem(b) };
    documents.set(b, d);
  }
  return d;
}
