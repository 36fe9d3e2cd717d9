/** A function with known blocks, for the coverage test (test/unit/fuzz-engine.test.ts). Not under test itself. */
export function probe(n: number): string {
  let out = 'small';
  if (n > 10) {
    out = 'big';
  }
  for (let i = 0; i < n; i++) out += '.';
  return out;
}
