/**
 * The agent pool keeps the most recently used agents: beyond maxAgents the least recently used
 * is destroyed, also when the newest one is handed out many times in a row.
 */
import https from 'node:https';
import { describe, expect, it } from 'vitest';
import type { LoadedProfile } from '../../src/pki/types.js';
import { AgentPool, MAX_AGENTS, type AgentSpec } from '../../src/tls/agents.js';
import { unusedPort } from '../helpers/servers.js';

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

  it('keeps 4096 agents by default (at 512, 600 pairs in use thrashed: a full handshake per call)', () => {
    const pool = new AgentPool();
    const first = pool.get(spec('h0.example'));
    for (let i = 1; i < MAX_AGENTS; i++) pool.get(spec(`h${i}.example`));
    expect(MAX_AGENTS).toBe(4096);
    expect(pool.size).toBe(4096);
    expect(pool.get(spec('h0.example'))).toBe(first);
    pool.destroy();
  });

  it('says which agent it evicted and whether it had connections (an agent in use: pairs outnumber maxAgents)', async () => {
    const evicted: { profile: string; origin: string; openSockets: number; maxAgents: number }[] = [];
    const pool = new AgentPool({ maxAgents: 1, onEvicted: (e) => evicted.push(e) });
    const busy = pool.get(spec('127.0.0.1'));
    // A call in flight on it: a socket still connecting to a closed port.
    const request = https.request({ agent: busy, host: '127.0.0.1', port: await unusedPort(), path: '/' });
    const ended = new Promise((resolve) => request.on('error', resolve));
    request.end();
    pool.get(spec('b.example'));
    pool.get(spec('c.example'));
    await ended;
    expect(evicted).toEqual([
      { profile: 'bank', origin: 'https://127.0.0.1', openSockets: 1, maxAgents: 1 },
      { profile: 'bank', origin: 'https://b.example', openSockets: 0, maxAgents: 1 },
    ]);
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

describe('agent pool names', () => {
  it("are node:https's names, computed once per endpoint: host, port, local address, family and SNI each tell them apart", () => {
    const pool = new AgentPool();
    // An IP-literal origin sends no SNI of its own: node:https then takes a request's servername from its Host header.
    for (const agentSpec of [spec('10.0.0.1'), spec('a.example'), { ...spec('a.example'), servername: 'sni.example' }, { ...spec('10.0.0.1'), proxyUrl: 'http://proxy.example:3128' }]) {
      const agent = pool.get(agentSpec);
      const own = (agent as unknown as { options: https.RequestOptions }).options;
      const variants: (https.RequestOptions & { servername?: string })[] = [
        { host: 'a.example', port: 443 },
        { host: 'a.example', port: 8443 },
        { host: 'b.example', port: 443 },
        { host: 'a.example', port: 443, servername: 'other.example' },
        { host: 'a.example', port: 443, localAddress: '127.0.0.2' },
        { host: 'a.example', port: 443, family: 6 },
      ];
      // Each variant right after the first one, which it differs from in one field: a cache that
      // compared fewer fields would hand it the first one's name.
      for (const round of [1, 2]) {
        for (const v of variants.flatMap((variant) => [variants[0] as https.RequestOptions, variant])) {
          // As Agent.addRequest merges them: the agent's own options take precedence.
          const merged = { ...v, ...own, ...(own.servername ? {} : { servername: v.servername }) };
          expect(agent.getName(merged), `round ${round}: ${JSON.stringify(v)}`).toBe(https.Agent.prototype.getName.call(agent, merged));
        }
      }
      expect(new Set(variants.map((v) => agent.getName({ ...v, ...own }))).size).toBe(own.servername ? 5 : 6);
    }
    pool.destroy();
  });
});
