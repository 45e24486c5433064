/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Median of the per-round ratios a[i]/b[i] (rounds are paired: A and B ran back to back). */
export function medianRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((v, i) => v / (b[i] as number)));
}

/** Smallest and largest of the per-round ratios a[i]/b[i]: the spread beside their median. */
export function ratioSpread(a: readonly number[], b: readonly number[]): { min: number; max: number } {
  const ratios = a.map((v, i) => v / (b[i] as number));
  return { min: Math.min(...ratios), max: Math.max(...ratios) };
}
