/**
 * One way to assert a refusal: the thing throws (or rejects with) a WritError of exactly this
 * code, and its message matches. A non-WritError, a resolved promise or another code fails the
 * test, so a check that is deleted or that fails for the wrong reason cannot pass unnoticed.
 */
import { expect } from 'vitest';
import { isWritError, type WritError, type WritErrorCode } from '../../src/errors.js';

type Refusing = Promise<unknown> | (() => unknown);

/** What `target` threw or rejected with; fails the test when it returned or resolved. */
async function thrownBy(target: Refusing): Promise<unknown> {
  const marker = Symbol('returned');
  let outcome: unknown;
  try {
    outcome = await (typeof target === 'function' ? target() : target);
    outcome = marker;
  } catch (e) {
    outcome = e;
  }
  if (outcome === marker) expect.fail('expected a WritError, but nothing was thrown');
  return outcome;
}

/**
 * Asserts that `target` (a promise, or a function, sync or async) refuses with a WritError of
 * this `code` whose message matches `message` (a RegExp, or a string the message must contain).
 * Returns the error, for further checks.
 */
export async function expectWritError<C extends WritErrorCode>(target: Refusing, code: C, message?: RegExp | string): Promise<WritError<C>> {
  const e = await thrownBy(target);
  if (!isWritError(e)) expect.fail(`expected a WritError ${code}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  expect(e.code, `code of "${e.message}"`).toBe(code);
  if (typeof message === 'string') expect(e.message).toContain(message);
  else if (message) expect(e.message).toMatch(message);
  return e as WritError<C>;
}
