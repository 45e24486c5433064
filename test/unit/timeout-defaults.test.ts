/**
 * Default timeouts fit a bot conversation: the platform gives a service node 20 s at most (its
 * service-node timeout is 1–20 s), so one invocation with the default retries must end before
 * that, and the README states the defaults it is built on.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/invoke/defaults.js';
import { REPO_ROOT } from '../helpers/cli.js';

const PLATFORM_LIMIT_MS = 20_000;

describe('default timeouts', () => {
  const { timeouts, retry } = DEFAULTS;

  it('every attempt timing out, with the default retries and backoff, still ends within 20 s', () => {
    let worst = timeouts.totalMs;
    for (let retryNo = 1; retryNo <= retry.limit; retryNo++) worst += Math.min(retry.backoffMs * 2 ** (retryNo - 1), retry.maxBackoffMs) + timeouts.totalMs;
    expect(worst).toBeLessThan(PLATFORM_LIMIT_MS);
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
