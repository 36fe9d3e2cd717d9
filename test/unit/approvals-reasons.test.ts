/**
 * Reasons an agent (Escalate) or an approver (Deny) gives reach an approver's screen and the
 * audit log: one line of visible text. Control characters were refused already; format
 * characters (bidi overrides and isolates, zero-width, BOM) must be too, or a reason can show an
 * approver something other than what it says (Trojan Source).
 */
import { describe, expect, it } from 'vitest';
import { MAX_APPROVAL_REASON_BYTES, checkReason } from '../../src/approval/request.js';

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
  return 'accepted';
};

describe('checkReason', () => {
  it.each([
    ['plain text', 'push the fix for the login outage'],
    ['non-Latin text', 'исправить вход — 修复登录'],
    ['an emoji without a joiner', 'ship it 🚀'],
    ['right-to-left text without controls', 'לפרוס את התיקון'],
    ['the longest reason', 'x'.repeat(MAX_APPROVAL_REASON_BYTES)],
  ])('accepts %s', (_what, reason) => {
    expect(code(() => checkReason(reason, 'the escalation'))).toBe('accepted');
  });

  it.each([
    ['empty', ''],
    ['only spaces', '   '],
    ['too long', 'x'.repeat(MAX_APPROVAL_REASON_BYTES + 1)],
    ['a newline', 'a\nb'],
    ['DEL', 'a\x7fb'],
    ['a C1 control (U+0085 next line)', 'a\u0085b'],
    ['U+202E right-to-left override', 'approve \u202Eetad\u202C'],
    ['U+202A left-to-right embedding', 'a\u202Ab'],
    ['U+2066 left-to-right isolate', 'a\u2066b\u2069'],
    ['U+2067 right-to-left isolate', 'a\u2067b'],
    ['U+2068 first strong isolate', 'a\u2068b'],
    ['U+2069 pop directional isolate', 'ab\u2069'],
    ['U+200B zero-width space', 'rm\u200B -rf'],
    ['U+200D zero-width joiner', 'a\u200Db'],
    ['U+200E left-to-right mark', 'a\u200Eb'],
    ['U+2060 word joiner', 'a\u2060b'],
    ['U+FEFF byte order mark', '\uFEFFreason'],
    ['U+00AD soft hyphen', 'de\u00ADploy'],
    ['a tag character (U+E0041)', 'a\u{E0041}b'],
    ['only a zero-width space', '\u200B'],
    ['U+2028 line separator', 'a\u2028b'],
    ['U+2029 paragraph separator', 'a\u2029b'],
    ['a lone surrogate', 'a\uD800b'],
  ])('refuses %s (ERR_APPROVAL_INVALID)', (_what, reason) => {
    expect(code(() => checkReason(reason, 'the denial'))).toBe('ERR_APPROVAL_INVALID');
  });
});
