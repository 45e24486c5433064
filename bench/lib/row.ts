/** One line of the bench table (and of results/latest.json's rows). */
export interface BenchRow {
  section: string;
  metric: string;
  baseline: string;
  value: string;
  ratio: string;
  target: string;
  met: string;
}
