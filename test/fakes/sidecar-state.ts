/**
 * A SidecarState that tests drive by hand (src/sidecar/state.ts): set the status, the identity
 * and the revocation freshness; every change reaches the subscribers synchronously, in order, as
 * the daemon's does. No attestation, renewal or watch behind it.
 */
import type { RevocationFreshness, SidecarIdentity, SidecarState, SidecarStatus } from '../../src/sidecar/state.js';

export class FakeSidecarState implements SidecarState {
  private status: SidecarStatus = { state: 'pending', reason: 'not attested yet' };
  private readonly listeners = new Set<(s: SidecarStatus) => void>();
  freshness: RevocationFreshness = { sequence: 0, confirmedAt: 0, connected: false };
  /** Overrides `revocationFreshness()` (e.g. a RevocationGuard's). */
  freshnessFrom?: () => RevocationFreshness;

  current(): SidecarStatus {
    return this.status;
  }

  subscribe(listener: (s: SidecarStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  jwtSvid(): Promise<{ spiffeId: string; token: string }> {
    return Promise.reject(new Error('fake: no JWT-SVIDs here'));
  }

  revocationFreshness(): RevocationFreshness {
    return this.freshnessFrom ? this.freshnessFrom() : this.freshness;
  }

  set(s: SidecarStatus): void {
    this.status = s;
    for (const l of [...this.listeners]) l(s);
  }

  serve(identity: SidecarIdentity): void {
    this.set({ state: 'serving', identity });
  }

  revoke(reason: string, at = Date.now()): void {
    this.set({ state: 'revoked', reason, at });
  }
}
