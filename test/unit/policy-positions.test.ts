/**
 * Cedar parse and validation errors name the file, line and column (src/policy/snapshot.ts),
 * computed from the UTF-8 byte offsets cedar-wasm returns: lines and columns count from 1,
 * columns in characters.
 */
import { describe, expect, it } from 'vitest';
import { buildSnapshot, splitPolicies } from '../../src/policy/snapshot.js';

const push =
  (name: string, text: string, more: Array<{ name: string; text: string }> = []) =>
  () =>
    buildSnapshot(splitPolicies([{ name, text }, ...more]));

const message = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toMatchObject({ code: 'ERR_POLICY_INVALID' });
    return (e as Error).message;
  }
  throw new Error('expected ERR_POLICY_INVALID');
};

const GOOD = 'permit(principal, action == Writ::Action::"delegate", resource);\n';

describe('policy: error positions', () => {
  it('a syntax error on line 3 is reported as file.cedar:3:<column>', () => {
    const text = `${GOOD}\npermit(principal, action, resource) when { principal.x == };\n`;
    // The `}` is the 59th character of line 3.
    expect(message(push('file.cedar', text))).toMatch(/file\.cedar:3:59: unexpected token `}`/);
  });

  it('counts columns in characters, not bytes, after multi-byte text', () => {
    const text = `// ünïcödé — comment\n${GOOD}permit(principal, action, resource) when { 1 + };\n`;
    const col = 'permit(principal, action, resource) when { 1 + '.length + 1;
    expect(message(push('u.cedar', text))).toContain(`u.cedar:3:${col}: unexpected token`);
    const sameLine = `/* */ permit(principal, action, resource);`;
    expect(message(push('c.cedar', `// é\n${sameLine}`))).toMatch(/c\.cedar:2:1: /);
  });

  it('a validation error points into the file at the offending expression, after other policies and comments', () => {
    const text = [
      '// permit(principal, action, resource) when { principal.nope };', // the same text, inside a comment
      GOOD.trim(),
      '',
      '@id("bad")',
      'permit(principal, action, resource) when {',
      '  principal.nope',
      '};',
    ].join('\n');
    const m = message(push('acme.cedar', text, [{ name: 'other.cedar', text: GOOD }]));
    expect(m).toMatch(/acme\.cedar:6:3: bad: .*attribute `nope`/);
  });

  it('a validation error on the first line of a policy that starts mid-line keeps its column', () => {
    const text = `${GOOD.trim()} forbid(principal, action, resource) when { resource.nope };`;
    const col = text.indexOf('resource.nope') + 1;
    expect(message(push('x.cedar', text))).toMatch(new RegExp(`x\\.cedar:1:${col}: x\\.1: .*nope`));
  });

  it('CRLF line endings count one line per CRLF', () => {
    const text = `${GOOD.trim()}\r\n\r\npermit(principal, action, resource) when { 1 + };\r\n`;
    expect(message(push('w.cedar', text))).toMatch(/w\.cedar:3:\d+: unexpected token/);
  });

  it('every error of every file is listed, each with its own position', () => {
    const m = message(() =>
      splitPolicies([
        { name: 'a.cedar', text: 'permit(principal action resource);' },
        { name: 'b.cedar', text: `${GOOD}\n\n  forbid(principal, action, resource) unless { ( };` },
      ]),
    );
    expect(m).toMatch(/a\.cedar:1:\d+: /);
    expect(m).toMatch(/b\.cedar:4:\d+: /);
  });

  it('a stored policy without its file still gets a position within the policy', () => {
    const m = message(() => buildSnapshot([{ id: 'p1', text: 'permit(principal, action, resource) when {\n  principal.nope\n};' }]));
    expect(m).toMatch(/p1 \(line 2, column 3\): .*nope/);
  });
});
