/**
 * More (profile, backend) pairs carrying traffic than the worker keeps agents for: each call then
 * drops another pair's connections and TLS sessions. The worker says so, once per 10 minutes,
 * with the option to raise. A real worker with maxAgents 1 and two origins on one backend.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerRig, type WorkerRig } from '../helpers/worker-rig.js';

describe('a worker whose agent pool is too small for the pairs in use', () => {
  let rig: WorkerRig | undefined;
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    rig = await startWorkerRig({
      dirPrefix: 'svcnode-agent-eviction-',
      worker: { maxAgents: 1, logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }) },
      // The same backend by address: another origin, so another agent.
      nodes: (port) => ({ 'by-ip.json': JSON.stringify({ id: 'by-ip', request: { method: 'GET', url: `https://127.0.0.1:${port}/ping` }, tls: { profile: 'bank', servername: 'localhost' }, retry: { limit: 0 } }) }),
    });
  });
  afterAll(() => rig?.close());

  it('logs SVCNODE_AGENTS_EVICTED with the pair and maxAgents, once however often it happens; every call still succeeds', async () => {
    if (!rig) throw new Error('set-up failed');
    const { client } = rig;
    for (let i = 0; i < 3; i++) {
      for (const node of ['ping', 'by-ip']) expect((await client.invoke(node, {}, { timeoutMs: 10_000 })).ok, node).toBe(true);
    }
    const said = logs.filter((l) => l.code === 'SVCNODE_AGENTS_EVICTED');
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 40, profile: 'bank', maxAgents: 1, openSockets: 1, hint: expect.stringContaining('raise the maxAgents worker option') as unknown });
    expect(['https://localhost:' + String(rig.backend.port), `https://127.0.0.1:${rig.backend.port}`]).toContain(said[0]?.origin);
    // Each call opened a new connection: the thrash the line warns of.
    expect(rig.backend.connections).toBeGreaterThanOrEqual(6);
  }, 60_000);
});
