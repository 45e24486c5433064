/**
 * Says a repeated log line once per window per key, with how often it was held back meanwhile:
 * a worker meets the same error or refusal thousands of times a second (a wrong Redis node, a
 * flow calling a removed node), and one line per occurrence floods the log.
 */
export class RepeatGate {
  private readonly seen = new Map<string, { at: number; count: number }>();

  /** `windowMs`: how long a key stays quiet after it was said; at most `maxKeys` keys are remembered (producer-chosen ids are unbounded). */
  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 1024,
  ) {}

  /**
   * Whether to say `key` now: undefined to hold it back (counted), else the number held back
   * since it was last said (0 the first time), for the line's `repeated` field.
   */
  pass(key: string, now: number = Date.now()): number | undefined {
    const seen = this.seen.get(key);
    if (seen && now - seen.at < this.windowMs) {
      seen.count++;
      return undefined;
    }
    if (!seen && this.seen.size >= this.maxKeys) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.delete(key);
    this.seen.set(key, { at: now, count: 0 });
    return seen?.count ?? 0;
  }
}
