/**
 * `writ agent run --config FILE` through the real executable (bin/writ → dist/): every problem of
 * the file, its shape and its values, in one run, as `writ server --config` reports its own
 * ("writ: invalid configuration: a; b; c", exit 1), with nothing started; flags override the
 * file's values as before.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/shared.js';

const WRIT = join(REPO_ROOT, 'bin', 'writ');
if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('dist/ is missing: run `make build` before the CLI tests');
const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'wsrc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function writ(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(WRIT, args, { cwd: dir, env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: '' }, timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** Seven bad values (one of them twice wrong) and one bad shape; the join token is fine. */
const BAD = `server: nowhere
bundle: ${join(dir, 'no-such-bundle.pem')}
socket: relative/agent.sock
revocation-max-staleness: soon
scope: [read=repo://acme/x]
boundary: [nonsense]
metrics-listen: 127.0.0.1:notaport
jwt-audience: [1]
join-token: abc
`;

describe('writ agent run --config', () => {
  it('names every bad value and shape in one run, exits as `writ server --config` does, starts nothing', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, BAD);
    const r = await writ('agent', 'run', '--config', file);
    const server = await writ('server', '--config', file, '--data-dir', join(dir, 'data'));
    expect(server.code).toBe(1);
    expect(server.stderr).toMatch(/^writ: invalid configuration: /);
    expect(r.code).toBe(server.code);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    // One line, no log line of a started sidecar.
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatch(/^writ: invalid configuration: /);
    for (const named of [
      `${file}: jwt-audience: must be a string or a list of strings`,
      '--server must be HOST:PORT',
      `--bundle: cannot read ${join(dir, 'no-such-bundle.pem')}`,
      '--socket must be an absolute path (got "relative/agent.sock")',
      '--revocation-max-staleness: ',
      '--scope needs --parent-socket',
      '--boundary needs --parent-socket',
      '--boundary: delegation: "nonsense" is not ACTION=RESOURCE',
      '--metrics-listen: ',
    ])
      expect(line).toContain(named);
    expect(line!.split('; ')).toHaveLength(9);
  });

  it('a flag overrides a bad value of the file, which is then not reported', async () => {
    const file = join(dir, 'bad2.yaml');
    writeFileSync(file, BAD);
    const r = await writ('agent', 'run', '--config', file, '--server', '127.0.0.1:1', '--socket', join(dir, 'a.sock'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^writ: invalid configuration: /);
    expect(r.stderr).not.toContain('--server');
    expect(r.stderr).not.toContain('--socket');
    expect(r.stderr).toContain('--scope needs --parent-socket');
    expect(existsSync(join(dir, 'a.sock'))).toBe(false);
  });
});
