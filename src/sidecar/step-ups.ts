/**
 * The step-up grants a sidecar holds: approvals of its agent's escalations, presented on every
 * renewal so the writ carries them (docs/writ-format.md §Step-up grants). Bounded; an expired
 * one is dropped, and they live only as long as this sidecar's task (the issuer refuses them
 * after it ends, and the next task's sidecar starts with none).
 */
import { parseStepUpGrantCached } from '../delegation/step-up.js';
import { MAX_STEP_UPS } from '../writ/writ.js';

export class StepUpHolder {
  private readonly held: string[] = [];

  /** Keeps a step-up grant (the newest first dropped past the writ's limit: the oldest goes). */
  add(compact: string): void {
    parseStepUpGrantCached(compact); // structure only: the issuer checks it at renewal
    if (this.held.includes(compact)) return;
    this.held.push(compact);
    while (this.held.length > MAX_STEP_UPS) this.held.shift();
  }

  /** The unexpired ones at `nowMs`, oldest first. */
  current(nowMs: number): string[] {
    const live = this.held.filter((c) => parseStepUpGrantCached(c).claims.exp * 1000 > nowMs);
    this.held.splice(0, this.held.length, ...live);
    return [...live];
  }
}
