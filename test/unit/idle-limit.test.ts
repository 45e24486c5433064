/**
 * The idle limit of an agent's pooled connections: configured, announced by the server, learned
 * from the backend's own closes, and forgotten again. A clock of the test's own.
 */
import { describe, expect, it } from 'vitest';
import { IdleLimit, LEARNED_TTL_MS, type IdleLearned } from '../../src/tls/idle-limit.js';

function limitWithClock(configuredMs = 4_000): { idle: IdleLimit; learned: IdleLearned[]; advance: (ms: number) => void } {
  let now = 1_000_000;
  const learned: IdleLearned[] = [];
  const idle = new IdleLimit(configuredMs, (l) => learned.push(l), () => now);
  return { idle, learned, advance: (ms) => void (now += ms) };
}

describe('IdleLimit', () => {
  it('is timeouts.keepAliveMs, or 1 s under the Keep-Alive timeout the server announced when that is shorter', () => {
    const { idle } = limitWithClock();
    expect(idle.limit()).toBe(4_000);
    expect(idle.limit(2_000)).toBe(1_000);
    expect(idle.limit(1_000)).toBe(0);
    expect(idle.limit(60_000)).toBe(4_000);
  });

  it('learns 3/4 of the idle time after which the backend closed, and only ever lowers it', () => {
    const { idle, learned } = limitWithClock();
    idle.observe(2_000);
    expect(idle.limit()).toBe(1_500);
    expect(idle.limit(2_000)).toBe(1_000);
    idle.observe(3_000);
    expect(idle.limit()).toBe(1_500);
    idle.observe(1_200);
    expect(idle.limit()).toBe(900);
    expect(learned).toEqual([
      { idleMs: 2_000, limitMs: 1_500, configuredMs: 4_000 },
      { idleMs: 1_200, limitMs: 900, configuredMs: 4_000 },
    ]);
  });

  it('ignores closes sooner than 1 s idle and closes that leave the limit as it is', () => {
    const { idle, learned } = limitWithClock();
    idle.observe(999);
    idle.observe(0);
    idle.observe(Number.NaN);
    idle.observe(6_000);
    expect(idle.limit()).toBe(4_000);
    expect(learned).toEqual([]);
  });

  it('forgets what it learned 10 min after the last close that taught or confirmed it', () => {
    const { idle, advance } = limitWithClock();
    idle.observe(2_000);
    advance(LEARNED_TTL_MS - 1);
    // A later close that teaches no lower limit still confirms the learned one.
    idle.observe(2_400);
    advance(LEARNED_TTL_MS - 1);
    expect(idle.limit()).toBe(1_500);
    advance(2);
    expect(idle.limit()).toBe(4_000);
  });
});
