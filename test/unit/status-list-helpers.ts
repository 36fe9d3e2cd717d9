/** Asserts that `fn` throws a WritError with this code and a message matching `msg`. */
import { expect } from 'vitest';
import { isWritError } from '../../src/errors.js';

export function expectWritErrorSync(fn: () => unknown, code: string, msg: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isWritError(thrown), `expected a WritError, got ${String(thrown)}`).toBe(true);
  expect((thrown as { code: string }).code).toBe(code);
  expect((thrown as Error).message).toMatch(msg);
}
