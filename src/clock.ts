/** Injected time: nothing below server/ and agent/ reads the wall clock directly. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock tests can set and move. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(start: Date | number) {
    this.ms = typeof start === 'number' ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.ms);
  }
  set(d: Date | number): void {
    this.ms = typeof d === 'number' ? d : d.getTime();
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
