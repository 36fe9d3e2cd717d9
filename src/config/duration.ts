/** Go-style durations ("90s", "5m", "1h30m", "24h") to milliseconds. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(s: string): number {
  const text = s.trim();
  if (!/^(\d+(ms|s|m|h))+$/.test(text)) throw new Error(`invalid duration ${JSON.stringify(s)} (use e.g. 90s, 5m, 1h30m)`);
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}
