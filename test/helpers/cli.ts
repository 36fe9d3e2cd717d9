/** The CLI in this process (no child process, no dist/), with its output captured. */
import { main, type CliOptions } from '../../src/cli/main.js';

export async function runCli(argv: readonly string[], opts: Omit<CliOptions, 'io'> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    env: {},
    ...opts,
    io: {
      out: (t) => {
        out += t;
      },
      err: (t) => {
        err += t;
      },
    },
  });
  return { code, out, err };
}
