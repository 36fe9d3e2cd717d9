/**
 * Replays every input the fuzzer found and we fixed (test/fuzz/regressions/<target>/*) through
 * the same contract the fuzzer checks (test/fuzz/engine/contract.ts), so `make test` keeps them
 * fixed; and checks that each target's oracle can fail: its seeds keep the contract, and for a
 * verifier of signed input the valid seeds are accepted while a one-byte change of each is not.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkContract, type FuzzTarget, type TargetInstance } from '../fuzz/engine/contract.js';
import { REGRESSIONS } from '../fuzz/engine/paths.js';
import { TARGETS } from '../fuzz/targets/index.js';

const instances = new Map<string, Promise<TargetInstance>>();
const instance = (t: FuzzTarget) => {
  let p = instances.get(t.name);
  if (!p) {
    p = Promise.resolve(t.setup());
    instances.set(t.name, p);
  }
  return p;
};

const dirs = existsSync(REGRESSIONS) ? readdirSync(REGRESSIONS).sort() : [];
const cases = dirs.flatMap((d) => readdirSync(join(REGRESSIONS, d)).map((f) => [d, f] as const));

describe('fuzz regressions', () => {
  it('every regression folder names a target', () => {
    expect(dirs.filter((d) => !TARGETS.some((t) => t.name === d))).toEqual([]);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('%s/%s keeps the contract', async (dir, file) => {
    const t = TARGETS.find((x) => x.name === dir)!;
    const v = checkContract(t.signed === true, await instance(t), readFileSync(join(REGRESSIONS, dir, file)));
    expect(v, v ? `${v.kind}: ${v.message}\n${v.stack ?? ''}` : '').toBeUndefined();
  });
});

describe('fuzz targets', () => {
  it.each(TARGETS.map((t) => [t.name, t] as const))('%s: seeds keep the contract; a signed target accepts exactly its valid seeds', async (_n, t) => {
    const inst = await instance(t);
    expect(inst.seeds.length).toBeGreaterThan(0);
    for (const s of inst.seeds) expect(checkContract(t.signed === true, inst, s)).toBeUndefined();
    if (!t.signed) return;
    const valid = inst.seeds.filter((s) => inst.isValid!(s));
    expect(valid.length).toBeGreaterThan(0);
    for (const s of valid) {
      expect(inst.run(s)).toBe('accepted');
      const m = Buffer.from(s);
      m[m.length >> 1]! ^= 0x01;
      // The flipped input is not valid, so accepting it would be reported as an accepted mutant.
      expect(inst.isValid!(m)).toBe(false);
      let outcome: string | undefined;
      try {
        outcome = inst.run(m);
      } catch {
        outcome = 'rejected';
      }
      expect(outcome).not.toBe('accepted');
    }
  });
});
