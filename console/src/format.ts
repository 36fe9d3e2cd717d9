/** Small formatting helpers shared by the pages. */
export const when = (ms: bigint | number): string => (Number(ms) === 0 ? '—' : new Date(Number(ms)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
export const short = (s: string, n = 10): string => (s.length > n + 1 ? `${s.slice(0, n)}…` : s);
