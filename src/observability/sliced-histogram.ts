import { setImmediate as yieldToLoop } from 'node:timers/promises';

interface Series {
  /** `label="value"`, escaped once. */
  label: string;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/** Prometheus text escaping of a label value (backslash, double quote, newline), as prom-client does. */
function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** Series rendered between two turns of the event loop: some 4,000 lines, a few milliseconds. */
const SERIES_PER_SLICE = 250;

/**
 * A histogram with one label, in Prometheus text format, rendered a slice of series at a time
 * with the event loop let through in between. prom-client renders a metric in one synchronous
 * piece: its per-node call-duration histogram at 5,000 nodes is 75,000 lines, and a scrape held
 * the worker's only thread for 0.2–0.5 s (job latency p99 11 ms → 244 ms while scraped every
 * second). The text is the one prom-client writes for the same observations (`le` first).
 */
export class SlicedHistogram {
  private readonly series = new Map<string, Series>();
  private readonly bounds: readonly string[];

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly labelName: string,
    private readonly buckets: readonly number[],
  ) {
    this.bounds = [...buckets.map(String), '+Inf'];
  }

  observe(labelValue: string, value: number): void {
    let s = this.series.get(labelValue);
    if (!s) {
      s = { label: `${this.labelName}="${escapeLabelValue(labelValue)}"`, counts: new Array<number>(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.series.set(labelValue, s);
    }
    let i = 0;
    while (i < this.buckets.length && value > (this.buckets[i] as number)) i++;
    (s.counts[i] as number)++;
    s.sum += value;
    s.count++;
  }

  remove(labelValue: string): void {
    this.series.delete(labelValue);
  }

  /** Series held (label values observed and not removed). */
  get size(): number {
    return this.series.size;
  }

  /** The metric's text (no trailing newline, as prom-client's per-metric text), letting the event loop through every SERIES_PER_SLICE series. */
  async text(): Promise<string> {
    const chunks = [`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${this.name} histogram`];
    let inSlice = 0;
    let lines: string[] = [];
    // Series added while a slice waits are rendered too (a Map iterator sees them); removed ones are not.
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i] as number;
        lines.push(`${this.name}_bucket{le="${this.bounds[i] as string}",${s.label}} ${cumulative}`);
      }
      lines.push(`${this.name}_sum{${s.label}} ${s.sum}`, `${this.name}_count{${s.label}} ${s.count}`);
      if (++inSlice === SERIES_PER_SLICE) {
        chunks.push(lines.join('\n'));
        lines = [];
        inSlice = 0;
        await yieldToLoop();
      }
    }
    if (lines.length > 0) chunks.push(lines.join('\n'));
    return chunks.join('\n');
  }
}
