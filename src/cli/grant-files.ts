/** Grant chain files: each holds one or more compact JWS, one per line, root first. */
import { readInputFile } from '../config/files.js';

export function readGrantFiles(files: readonly string[]): string[] {
  return files.flatMap((f) =>
    readInputFile(f, '--grant')
      .toString('utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== ''),
  );
}
