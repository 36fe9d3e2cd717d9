/**
 * Prints the score table of Stryker JSON reports (`node test/mutation/summary.mjs reports/mutation/*.json`):
 * per folder of src/, killed / survived / no coverage / timeout / errors and the percentage of
 * covered mutants killed ((killed + timeout) / (killed + timeout + survived)), Stryker's "covered" score.
 */
import { readFileSync } from 'node:fs';

const rows = new Map();
for (const file of process.argv.slice(2)) {
  const report = JSON.parse(readFileSync(file, 'utf8'));
  for (const [path, f] of Object.entries(report.files)) {
    const folder = path.split('/').slice(0, 2).join('/');
    const r = rows.get(folder) ?? { Killed: 0, Survived: 0, NoCoverage: 0, Timeout: 0, CompileError: 0, RuntimeError: 0, Ignored: 0 };
    for (const m of f.mutants) r[m.status] = (r[m.status] ?? 0) + 1;
    rows.set(folder, r);
  }
}
const pct = (r) => {
  const covered = r.Killed + r.Timeout + r.Survived;
  return covered ? ((100 * (r.Killed + r.Timeout)) / covered).toFixed(2) : '-';
};
console.log('| folder | mutants | killed | timeout | survived | no coverage | errors | % of covered killed |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
const total = { Killed: 0, Survived: 0, NoCoverage: 0, Timeout: 0, CompileError: 0, RuntimeError: 0, Ignored: 0 };
for (const [folder, r] of [...rows].sort()) {
  const n = Object.values(r).reduce((a, b) => a + b, 0);
  for (const k of Object.keys(total)) total[k] += r[k] ?? 0;
  console.log(`| ${folder} | ${n} | ${r.Killed} | ${r.Timeout} | ${r.Survived} | ${r.NoCoverage} | ${r.CompileError + r.RuntimeError} | ${pct(r)} |`);
}
const n = Object.values(total).reduce((a, b) => a + b, 0);
console.log(
  `| all | ${n} | ${total.Killed} | ${total.Timeout} | ${total.Survived} | ${total.NoCoverage} | ${total.CompileError + total.RuntimeError} | ${pct(total)} |`,
);
