/** CLI argument handling that a generic option parser gets wrong. */
import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { bindValues } from '../../src/cli/args.js';

describe('thumbprint flags', () => {
  // RFC 7638 thumbprints are base64url: 1 in 64 begins with "-" (and some of those with "--").
  const jkt = '-Xh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9XsNzb';
  const opts = { delegate: { type: 'string' }, out: { type: 'string' } } as const;
  it('a generic parser refuses a value that begins with "-"', () => {
    expect(() => parseArgs({ args: ['--delegate', jkt, '--out', 'f'], options: opts, strict: true })).toThrow(/ambiguous/);
  });
  it('bindValues gives --delegate and --child the next argument whatever it begins with', () => {
    const args = bindValues(['--delegate', jkt, '--out', 'f', '--child', `-${jkt}`], ['--delegate', '--child']);
    expect(args).toEqual([`--delegate=${jkt}`, '--out', 'f', `--child=-${jkt}`]);
    expect(parseArgs({ args: args.slice(0, 3), options: opts, strict: true }).values).toEqual({ delegate: jkt, out: 'f' });
  });
});
