/** `writ agent run --config FILE` (src/cli/verbs/agent/run-config.ts): every problem at once, flags override the file. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { OptionSpecs } from '../../src/config/options.js';
import { ConfigError } from '../../src/errors.js';
import { MAX_CONFIG_BYTES, withConfigFile } from '../../src/cli/verbs/agent/run-config.js';

const SPECS: OptionSpecs = {
  config: { type: 'string', help: '' },
  server: { type: 'string', help: '' },
  bundle: { type: 'string', help: '' },
  'jwt-audience': { type: 'string', multiple: true, help: '' },
  'tpm-key': { type: 'boolean', help: '' },
};
const dir = mkdtempSync(join(tmpdir(), 'warc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe('withConfigFile', () => {
  it('reads the options from YAML; a flag overrides the file', () => {
    const f = file('ok.yaml', 'server: 127.0.0.1:8443\nbundle: /etc/writ/bundle.pem\njwt-audience: [https://a, https://b]\ntpm-key: true\n');
    expect(withConfigFile(f, SPECS, { config: f, server: '10.0.0.1:8443' })).toEqual({
      server: '10.0.0.1:8443',
      bundle: '/etc/writ/bundle.pem',
      'jwt-audience': ['https://a', 'https://b'],
      'tpm-key': true,
    });
    expect(withConfigFile(file('one.yaml', 'jwt-audience: https://a\n'), SPECS, {})['jwt-audience']).toEqual(['https://a']);
  });
  it('reports every problem at once', () => {
    const f = file('bad.yaml', 'sever: x\nserver: 8443\njwt-audience: [1]\ntpm-key: "yes"\nconfig: other.yaml\n');
    let e: unknown;
    try {
      withConfigFile(f, SPECS, {});
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).problems.map((p) => p.slice(f.length + 2))).toEqual([
      'sever: unknown option',
      'server: must be a non-empty string',
      'jwt-audience: must be a string or a list of strings',
      'tpm-key: must be true or false',
      'config: unknown option',
    ]);
  });
  it('refuses a duplicate key, an alias, a non-mapping, an oversized file, a missing file', () => {
    expect(() => withConfigFile(file('dup.yaml', 'server: a:1\nserver: b:1\n'), SPECS, {})).toThrow(ConfigError);
    expect(() => withConfigFile(file('alias.yaml', 'bundle: &b x\nserver: *b\n'), SPECS, {})).toThrow(ConfigError);
    expect(() => withConfigFile(file('list.yaml', '- server\n'), SPECS, {})).toThrow(/not a mapping/);
    expect(() => withConfigFile(file('big.yaml', `bundle: ${'x'.repeat(MAX_CONFIG_BYTES)}\n`), SPECS, {})).toThrow(/larger than/);
    expect(() => withConfigFile(join(dir, 'none.yaml'), SPECS, {})).toThrow(ConfigError);
  });
});
