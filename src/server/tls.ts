/** Serving credentials whose certificate can be replaced without restarting the server. */
import * as grpc from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';

export class RotatingServerCredentials extends grpc.ServerCredentials {
  constructor(initial: SecureContextOptions) {
    // A non-null constructor-options object makes grpc-js treat these credentials as secure.
    super({}, { minVersion: 'TLSv1.2', ...initial });
  }
  /** Swaps the certificate and key; new connections use them at once. */
  update(next: SecureContextOptions): void {
    this.updateSecureContextOptions({ minVersion: 'TLSv1.2', ...next });
  }
  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}
