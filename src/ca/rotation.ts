/**
 * Rotation policy, apart from keys and certificates (SPIRE `ca/rotator` + `manager/slot`): for
 * the keys of one kind at an instant, what must change. A next key is prepared at half of the
 * active key's lifetime (and published in the bundle), activated at five sixths, and the old one
 * stays published as retired until everything it signed has expired.
 */
import type { CaKeyRecord } from '../store/store.js';

/** The portion of a lifetime after which a key is prepared / activated. */
export const PREPARE_AT = 1 / 2;
export const ACTIVATE_AT = 5 / 6;

export type RotationStep =
  | { readonly op: 'delete'; readonly id: string; readonly why: 'retired key expired' | 'active key expired' }
  | { readonly op: 'activate'; readonly id: string }
  | { readonly op: 'retire'; readonly id: string }
  | { readonly op: 'create'; readonly state: 'active' | 'prepared' };

type Slot = Pick<CaKeyRecord, 'id' | 'state' | 'notBefore' | 'notAfter'>;

/** The steps that bring the keys of one kind up to date at `now`, in the order to apply them. */
export function planRotation(keys: readonly Slot[], now: number): RotationStep[] {
  const steps: RotationStep[] = [];
  for (const k of keys) if (k.state === 'retired' && k.notAfter <= now) steps.push({ op: 'delete', id: k.id, why: 'retired key expired' });
  const expiredActive = keys.find((k) => k.state === 'active' && k.notAfter <= now);
  if (expiredActive) steps.push({ op: 'delete', id: expiredActive.id, why: 'active key expired' });
  const active = keys.find((k) => k.state === 'active' && k.notAfter > now);
  const prepared = keys.find((k) => k.state === 'prepared' && k.notAfter > now);
  if (!active) {
    // First start, or the issuer was down past the active key's life.
    steps.push(prepared ? { op: 'activate', id: prepared.id } : { op: 'create', state: 'active' });
    return steps;
  }
  const life = active.notAfter - active.notBefore;
  const prepareAt = active.notBefore + life * PREPARE_AT;
  const activateAt = active.notBefore + life * ACTIVATE_AT;
  if (prepared) {
    if (now >= activateAt) steps.push({ op: 'retire', id: active.id }, { op: 'activate', id: prepared.id });
  } else if (now >= activateAt) {
    // Down past the preparation point: the next key becomes active at once.
    steps.push({ op: 'retire', id: active.id }, { op: 'create', state: 'active' });
  } else if (now >= prepareAt) {
    steps.push({ op: 'create', state: 'prepared' });
  }
  return steps;
}
