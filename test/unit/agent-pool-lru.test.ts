/**
 * The agent pool keeps the most recently used agents: beyond maxAgents the least recently used
 * is destroyed, also when the newest one is handed out many times in a row.
 */
import { describe, expect, it } from 'vitest';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool, type AgentSpec } from '../../src/tls/agents.js';

const profile: LoadedProfile = { name: 'bank', version: 'v1', file: '/p/bank.json', client: undefined, trust: { certificates: [], systemRoots: true }, policy: { minKeyBits: 2048, expiryWarningDays: 90 }, findings: [] };

function spec(host: string): AgentSpec {
  return { profile, origin: new URL(`https://${host}`), rules: {}, limits: { connectMs: 1_000, handshakeMs: 1_000 }, keepAliveMs: 4_000 };
}

describe('AgentPool', () => {
  it('evicts the least recently used agent, counting repeated use of the newest', () => {
    const pool = new AgentPool({ maxAgents: 2 });
    const a = pool.get(spec('a.example'));
    const b = pool.get(spec('b.example'));
    expect(pool.get(spec('a.example'))).toBe(a);
    expect(pool.get(spec('a.example'))).toBe(a);
    pool.get(spec('c.example'));
    // b was the least recently used: evicted, so its next use gets a new agent; a survived.
    expect(pool.get(spec('a.example'))).toBe(a);
    expect(pool.get(spec('b.example'))).not.toBe(b);
    pool.destroy();
  });

  it('after the newest agent is retired, the next call gets a new one', () => {
    const pool = new AgentPool();
    const a = pool.get(spec('a.example'));
    pool.retire('bank');
    expect(pool.get(spec('a.example'))).not.toBe(a);
    pool.destroy();
  });
});
