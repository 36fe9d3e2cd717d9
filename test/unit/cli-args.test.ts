/** CLI argument handling that a generic option parser gets wrong, and usage generated from the verb table. */
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/config/options.js';
import { BUILTIN_CATALOG, usage } from '../../src/cli/main.js';
import { allVerbs } from '../../src/cli/verbs/index.js';
import { optionsOf, parseVerbArgs, usageLine } from '../../src/cli/verb.js';

describe('thumbprint flags', () => {
  // RFC 7638 thumbprints are base64url: 1 in 64 begins with "-" (and some of those with "--").
  const jkt = '-Xh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9XsNzb';
  const opts = { delegate: { type: 'string' }, out: { type: 'string' } } as const;
  it('a generic parser refuses a value that begins with "-"', () => {
    expect(() => parseArgs({ args: ['--delegate', jkt, '--out', 'f'], options: opts, strict: true })).toThrow(/ambiguous/);
  });
  it('options declared takesNext take the next argument whatever it begins with', () => {
    const specs = {
      delegate: { type: 'string', help: '', takesNext: true },
      child: { type: 'string', help: '', takesNext: true },
      out: { type: 'string', help: '' },
    } as const;
    const r = parseVerbArgs(specs, ['--delegate', jkt, '--out', 'f', '--child', `-${jkt}`], 0);
    expect(r.values).toEqual({ delegate: jkt, out: 'f', child: `-${jkt}` });
    // Without takesNext the same value is refused, as parseArgs does.
    expect(() => parseVerbArgs({ out: { type: 'string', help: '' } }, ['--out', jkt], 0)).toThrow(UsageError);
  });
  it('every thumbprint option of the CLI is declared takesNext', () => {
    for (const v of allVerbs(BUILTIN_CATALOG)) {
      for (const [name, spec] of Object.entries(optionsOf(v, BUILTIN_CATALOG))) {
        if (spec.value === 'THUMBPRINT') expect(spec.takesNext, `${v.name.join(' ')} --${name}`).toBe(true);
      }
    }
  });
});

describe('usage', () => {
  const text = usage(BUILTIN_CATALOG);
  const starts = text.split('\n').filter((l) => l.startsWith('  writ '));
  it('names every verb on exactly one line', () => {
    // The verb's words are those before its first option, bracket or positional (upper case).
    const verbOf = (l: string) =>
      l
        .trim()
        .split(' ')
        .slice(1)
        .filter((_w, i, a) => !a.slice(0, i + 1).some((x) => /^[[(-]|^[A-Z]/.test(x)))
        .join(' ');
    for (const v of allVerbs(BUILTIN_CATALOG)) {
      expect(starts.filter((l) => verbOf(l) === v.name.join(' ')).length, v.name.join(' ')).toBe(1);
    }
  });
  it('shows each option of a verb exactly once (an option is declared once)', () => {
    for (const v of allVerbs(BUILTIN_CATALOG)) {
      const line = usageLine(v, BUILTIN_CATALOG);
      for (const name of Object.keys(optionsOf(v, BUILTIN_CATALOG))) {
        expect(line.match(new RegExp(`--${name}(?=[ \\].]|$)`, 'g'))?.length, `${v.name.join(' ')} --${name}`).toBe(1);
      }
    }
  });
});
