/**
 * Default timeouts fit a bot conversation: the platform gives a service node 20 s at most (its
 * service-node timeout is 1–20 s), so one invocation with the default retries must end before
 * that, and the README states the defaults it is built on.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NodeDefinition } from '../../src/definitions/types.js';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import { REPO_ROOT } from '../helpers/cli.js';

const PLATFORM_LIMIT_MS = 20_000;
const EXAMPLES_DIR = join(REPO_ROOT, 'examples', 'nodes');
const EXAMPLES = readdirSync(EXAMPLES_DIR).filter((f) => f.endsWith('.json'));

/** Every attempt running into its deadline, each retry after its longest backoff. */
function worstCaseMs(t: { totalMs: number }, r: { limit: number; backoffMs: number; maxBackoffMs: number }): number {
  let worst = t.totalMs;
  for (let retryNo = 1; retryNo <= r.limit; retryNo++) worst += Math.min(r.backoffMs * 2 ** (retryNo - 1), r.maxBackoffMs) + t.totalMs;
  return worst;
}

describe('default timeouts', () => {
  const { timeouts, retry } = DEFAULTS;

  it('every attempt timing out, with the default retries and backoff, still ends within 20 s', () => {
    expect(worstCaseMs(timeouts, retry)).toBeLessThan(PLATFORM_LIMIT_MS);
  });

  it.each(EXAMPLES)('the shipped example %s ends within 20 s too: operators copy it', (file) => {
    const node = JSON.parse(readFileSync(join(EXAMPLES_DIR, file), 'utf8')) as NodeDefinition;
    const t = { ...timeouts, ...node.timeouts };
    const r = { ...retry, ...node.retry };
    expect(worstCaseMs(t, r)).toBeLessThan(PLATFORM_LIMIT_MS);
    // An example that sets maxBackoffMs shows the setting that keeps Retry-After waits (honoured up to it) within the limit too.
    if (node.retry?.maxBackoffMs !== undefined) expect(worstCaseMs(t, { ...r, backoffMs: r.maxBackoffMs })).toBeLessThan(PLATFORM_LIMIT_MS);
  });

  it('no phase limit exceeds the attempt deadline', () => {
    for (const phase of [timeouts.connectMs, timeouts.handshakeMs, timeouts.responseMs, timeouts.idleMs]) expect(phase).toBeLessThanOrEqual(timeouts.totalMs);
  });

  it('the README states the defaults', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const s = (ms: number): string => `${ms / 1000} s`;
    expect(readme).toContain(`| ${s(timeouts.connectMs)} / ${s(timeouts.handshakeMs)} / ${s(timeouts.responseMs)} / ${s(timeouts.idleMs)} / ${s(timeouts.totalMs)} / ${s(timeouts.keepAliveMs)} |`);
  });
});
