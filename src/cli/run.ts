/** The process entry point (bin/writ): runs main with the real argv and exits with its code. */
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`writ: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
